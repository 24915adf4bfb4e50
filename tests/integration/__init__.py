"""Integration tests: one stage against the real server it talks to (MinIO), on 127.0.0.1."""
