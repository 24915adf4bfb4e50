"""The real MinIO server on 127.0.0.1, for tests that publish to S3.

The binary is built once per machine by scripts/test-tools.sh (from the Go module proxy, into a cache outside the
repository); ANCHOR_MINIO_BIN points at another build. Each server gets random root credentials, free ports and
its own data directory, and is stopped by its pid when the context ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from minio.credentials.providers import StaticProvider
from minio.minioadmin import MinioAdmin

from tests.support import leftovers
from tests.support.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
TEST_TOOLS = REPO / "scripts" / "test-tools.sh"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Settings that keep a test server quiet and self-contained: no update checks, no call-home, no console.
_OFFLINE = {
    "MINIO_UPDATE": "off",
    "MINIO_CALLHOME_ENABLE": "off",
    "MINIO_BROWSER": "off",
    "MINIO_CI_CD": "on",
}


@dataclass(frozen=True)
class MinioServer:
    endpoint: str
    """host:port, as spec.output.s3.endpoint takes it."""
    access_key: str
    secret_key: str
    pid: int
    url: str
    """http://host:port"""


def user_denied_puts(server: MinioServer, bucket: str, denied: str) -> tuple[str, str]:
    """A new user of `server` who may do anything in `bucket` but write objects matching `denied` (a key pattern,
    e.g. "*/subtitles.srt"): a real refusal partway through a write. Returns (access key, secret key)."""
    user, password = "limited-" + secrets.token_hex(4), secrets.token_urlsafe(20)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
            {"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{bucket}/{denied}"]},
        ],
    }
    admin = MinioAdmin(
        endpoint=server.endpoint, credentials=StaticProvider(server.access_key, server.secret_key), secure=False
    )
    admin.user_add(user, password)
    admin.policy_add(f"policy-{user}", policy=policy)
    admin.attach_policy([f"policy-{user}"], user=user)
    return user, password


class MinioUnavailable(RuntimeError):
    """The MinIO binary is missing or the server would not start."""


def minio_version() -> str:
    """The MinIO version test-tools.sh builds: the cache directory is keyed by it."""
    match = re.search(r'^MINIO_VERSION="([^"]+)"', TEST_TOOLS.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise MinioUnavailable(f'no MINIO_VERSION="..." line in {TEST_TOOLS}')
    return match.group(1)


def minio_binary() -> Path | None:
    """ANCHOR_MINIO_BIN, else the binary test-tools.sh caches; None when it has not been built."""
    override = os.environ.get("ANCHOR_MINIO_BIN")
    if override:
        path = Path(override)
    else:
        cache = subprocess.run(
            ["bash", str(TEST_TOOLS), "--path"], capture_output=True, text=True, check=True
        ).stdout.strip()
        path = Path(cache) / f"minio-{minio_version()}" / "minio"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@contextmanager
def running_minio(data_dir: Path, host: str = "127.0.0.1") -> Iterator[MinioServer]:
    """A MinIO server storing into data_dir/data and logging to data_dir/minio.log, for the context's length.
    `host`: 127.0.0.1, or an address a test made on this machine (the real node's, for its pods)."""
    binary = minio_binary()
    if binary is None:
        raise MinioUnavailable(
            "the MinIO server binary is missing: run scripts/test-tools.sh once to build it "
            "(or set ANCHOR_MINIO_BIN to a minio binary)"
        )
    access_key = "anchor-" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    port, console_port = free_port(), free_port()
    endpoint = f"{host}:{port}"
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "minio.log"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}  # no stray settings
    env = {**inherited, **_OFFLINE, "MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key}
    command = [
        str(binary),
        "server",
        str(data_dir / "data"),
        "--address",
        endpoint,
        "--console-address",
        f"{host}:{console_port}",
        "--certs-dir",
        str(data_dir / "certs"),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    leftovers.current().process(process.pid, "minio")
    try:
        _wait_until_live(process, f"http://{endpoint}", log_path)
        yield MinioServer(endpoint, access_key, secret_key, process.pid, f"http://{endpoint}")
    finally:
        stop(process, STOP_TIMEOUT)


def _wait_until_live(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with requests.Session() as session:
        session.trust_env = False  # a proxy from the environment must not stand between the test and 127.0.0.1
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise MinioUnavailable(f"MinIO exited with code {process.returncode}: {_tail(log_path)}")
            try:
                if session.get(f"{url}/minio/health/live", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # doubles as the poll interval, and notices an early exit at once
    raise MinioUnavailable(f"MinIO was not live at {url} within {READY_TIMEOUT:.0f} s: {_tail(log_path)}")


def _tail(log_path: Path, lines: int = 20) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or f"(nothing in {log_path})"
