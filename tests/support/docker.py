"""anchor's images, built by scripts/images.sh, and containers run from them as a user's cluster would run them:
non-root, read-only root file system, every capability dropped, no new privileges. Each container is removed by
its id when the test ends, also when it fails."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from tests.support import leftovers
from tests.support.tools import REPO

SCRIPT = REPO / "scripts" / "images.sh"
RESTRICTED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers, or the images cannot be built here; the message says which."""


@dataclass(frozen=True)
class Images:
    job: str
    controller: str
    engine_mock: str
    base: str


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, text=True)


def compose_project(name: str) -> dict[str, list[str]]:
    """Containers, networks and volumes labelled with the Compose project's name."""
    label = f"label=com.docker.compose.project={name}"
    found = {
        "containers": docker("ps", "--all", "--quiet", "--filter", label).stdout.split(),
        "networks": docker("network", "ls", "--quiet", "--filter", label).stdout.split(),
        "volumes": docker("volume", "ls", "--quiet", "--filter", label).stdout.split(),
    }
    return {kind: ids for kind, ids in found.items() if ids}


def remove_compose_project(name: str) -> int:
    """Remove what compose_project finds; returns how many things went."""
    left = compose_project(name)
    for container in left.get("containers", []):
        docker("rm", "--force", "--volumes", container)
    for network in left.get("networks", []):
        docker("network", "rm", network)
    for volume in left.get("volumes", []):
        docker("volume", "rm", "--force", volume)
    return sum(len(ids) for ids in left.values())


@cache
def images() -> Images:
    """The images of the current sources, built (once per content, cached by the script) if missing."""
    if shutil.which("docker") is None:
        raise DockerUnavailable("docker is not installed (apt-get install docker.io)")
    if docker("info").returncode != 0:
        raise DockerUnavailable("no Docker daemon answers (`scripts/with-docker.sh make test` starts one)")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise DockerUnavailable(f"scripts/images.sh failed:\n{done.stderr[-3000:]}")
    refs = dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)
    return Images(refs["job"], refs["controller"], refs["engine-mock"], refs["base"])


@cache
def budgets() -> dict[str, int]:
    """The size budgets (MB above the base) the image script declares."""
    line = re.search(r"^declare -A BUDGET=\((.*)\)", SCRIPT.read_text(), flags=re.M)
    assert line, f"no BUDGET line in {SCRIPT}"
    return {name: int(mb) for name, mb in re.findall(r"\[([\w-]+)\]=(\d+)", line.group(1))}


def size_bytes(image: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())


def run(image: str, *args: str, options: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` under the restricted settings, no network unless `options` give one."""
    network = [] if "--network" in options else ["--network", "none"]
    return docker("run", "--rm", *RESTRICTED, *network, *options, image, *args, timeout=timeout)


@dataclass
class Container:
    id: str

    def logs(self) -> str:
        done = docker("logs", self.id)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.id, *command)


@contextmanager
def running(image: str, *args: str, options: Sequence[str] = ()) -> Iterator[Container]:
    """A detached container under the restricted settings; removed by its id at the end."""
    started = docker("run", "--detach", *RESTRICTED, *options, image, *args)
    if started.returncode != 0:
        raise AssertionError(f"docker run {image} failed: {started.stderr}")
    container = Container(started.stdout.strip())
    leftovers.current().note("container", id=container.id)
    try:
        yield container
    finally:
        docker("rm", "--force", container.id)
