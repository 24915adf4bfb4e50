"""Where scripts/test-tools.sh put the servers and clients it builds (one source of truth for versions)."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test-tools.sh"


@cache
def versions() -> dict[str, str]:
    """NAME_VERSION="..." lines of the build script, as {"minio": ..., "kubernetes": ..., ...}."""
    found = re.findall(r'^([A-Z_]+)_VERSION="([^"]+)"', SCRIPT.read_text(), flags=re.M)
    return {name.lower(): version for name, version in found}


@cache
def cache_dir() -> Path:
    out = subprocess.run(["bash", str(SCRIPT), "--path"], capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def tool(name: str, binary: str | None = None, *, version_of: str | None = None) -> Path:
    """The built binary, or an error that says how to build it. `version_of`: the tool whose version line this one
    follows (the kubelet is built at KUBERNETES_VERSION)."""
    path = cache_dir() / f"{name}-{versions()[version_of or name]}" / (binary or name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/test-tools.sh to build the test tools")
    return path
