"""A stand-in for the chrislusf/seaweedfs image (whose registry this machine may not reach): the `weed` that
scripts/test-tools.sh builds at the pinned commit, in the image layout of the official one (seaweedfs.Dockerfile).
The compose test runs it as compose.yaml's `s3` service, the node test as the chart's s3store."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.docker import docker
from tests.support.tools import tool, versions

HERE = Path(__file__).parent


def seaweedfs_image(base: str) -> str:
    """The stand-in for chrislusf/seaweedfs (seaweedfs.Dockerfile), built once per weed version, base and
    Dockerfile."""
    try:
        weed = tool("seaweedfs", "weed")
    except (FileNotFoundError, KeyError) as exc:
        pytest.skip(f"SeaweedFS is not built here: {exc}")
    dockerfile = HERE / "seaweedfs.Dockerfile"
    base_id = docker("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    key = hashlib.sha256(f"{versions()['seaweedfs']}\n{base_id}\n{dockerfile.read_text()}".encode()).hexdigest()
    tag = f"anchor-test/seaweedfs:{key[:12]}"
    if docker("image", "inspect", tag).returncode == 0:
        return tag
    context = weed.parent / "docker-context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    try:
        os.link(weed, context / "weed")
        done = subprocess.run(
            ["docker", "build", "--network", "host", "--quiet", "--build-arg", f"BASE={base}", "-t", tag,
             "-f", str(dockerfile), str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        shutil.rmtree(context, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return tag
