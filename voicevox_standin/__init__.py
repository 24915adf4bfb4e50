"""anchor's CPU stand-in for the VOICEVOX engine: the engine's HTTP API, real Japanese speech from OpenJTalk.

It is not a VOICEVOX voice. The characters it lists mirror the real engine's catalogue so that specs, style ids
and credits work unchanged on a laptop, in tests and on CPU-only clusters. Run it with
``python -m voicevox_standin`` (``anchor standin-engine``) or in-process with
``voicevox_standin.server.start_standin()``.
"""
