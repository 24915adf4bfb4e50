"""The one-PC path: compose.yaml run with Docker Compose v5 as a user runs it, with the CPU mock of the VOICEVOX
engine in place of the official image and a feed this test serves. Each test gets its own project (a copy of the
repository's compose files in a temporary directory, a unique project name in its .env); whatever the project left
(containers, networks, volumes) is removed by id when the test ends, also when it fails. Where Docker, Compose or
the images are missing, the tests skip and say why."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import leftovers
from tests.support.docker import DockerUnavailable, Images, compose_project, docker, images, remove_compose_project
from tests.support.http import Reply, ScriptedServer, scripted_server
from tests.support.tools import REPO, tool, versions

HERE = Path(__file__).parent
FEED = REPO / "job" / "sample" / "feed-ja.xml"
# Owner of ./out and the job's user, as ANCHOR_USER=$(id -u):$(id -g) makes it: a user's own ids, and when the tests
# run as root, those of a made-up (non-root) user, which is what README's routine meets on a user's machine.
USER_IDS = (4242, 4242) if os.geteuid() == 0 else (os.getuid(), os.getgid())
# Settings a developer's shell may hold; environment variables win over .env, so none may leak into a project.
_SETTINGS_PREFIXES = ("COMPOSE_", "ANCHOR_", "VOICEVOX_", "SEAWEEDFS_")


def clean_environment(docker_config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env["DOCKER_CONFIG"] = str(docker_config)
    return env


@pytest.fixture(scope="session")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Docker client configuration with Compose v5 as its CLI plugin, as a user installs it (`docker compose`)."""
    try:
        binary = tool("compose", "docker-compose")
    except (FileNotFoundError, KeyError) as exc:
        pytest.skip(f"Docker Compose is not built here: {exc}")
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed (apt-get install docker.io)")
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(binary)
    done = subprocess.run(["docker", "compose", "version"], env=clean_environment(config), capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and versions()["compose"].lstrip("v") in done.stdout, done.stdout + done.stderr
    return config


@pytest.fixture(scope="session")
def built(docker_config: Path) -> Images:
    try:
        return images()
    except DockerUnavailable as exc:
        pytest.skip(f"the images cannot be built or run here: {exc}")


@dataclass
class Project:
    """A copy of compose.yaml, compose.cpu.yaml and compose/ in `directory`, with a .env of its own."""

    directory: Path
    name: str
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` in the project's directory, as a user types it there."""
        return subprocess.run(["docker", "compose", *args], cwd=self.directory, env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip

    def write_env(self, **settings: str) -> None:
        """.env beside compose.yaml: what a user writes there (compose/.env.example), plus the project's name."""
        lines = [f"COMPOSE_PROJECT_NAME={self.name}", *(f"{k}={v}" for k, v in settings.items())]
        (self.directory / ".env").write_text("\n".join(lines) + "\n")

    def broadcast(self, name: str, feed_url: str, **spec: Any) -> Path:
        """The project's compose/NAME with its feeds replaced by `feed_url` (allowed although private), and `spec`
        sections updated; everything else as shipped."""
        path = self.directory / "compose" / name
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        sources = document["spec"]["sources"]
        host = feed_url.split("//", 1)[1].split(":", 1)[0]
        sources.update(feeds=[{"url": feed_url, "name": "Test"}], maxAgeHours=0, allowedAddresses=[f"{host}/32"])
        # The sample feed's stories link to example hosts: no article-page lookups (DNS included) from here.
        document["spec"].setdefault("video", {})["storyImages"] = False
        for section, fields in spec.items():
            document["spec"].setdefault(section, {}).update(fields)
        path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def gateway(self) -> str:
        """The host's address on the project's network: where a test server is reachable from the project's
        containers (their 127.0.0.1 is their own) and from nowhere off this machine."""
        done = docker("network", "inspect", f"{self.name}_default", "--format", "{{json .IPAM.Config}}")
        assert done.returncode == 0, done.stderr
        config: list[dict[str, str]] = json.loads(done.stdout)
        return next(c["Gateway"] for c in config if "." in c.get("Gateway", ""))

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes labelled with the project's name."""
        return compose_project(self.name)

    def remove_leftovers(self) -> None:
        remove_compose_project(self.name)


@pytest.fixture
def project(docker_config: Path, tmp_path: Path) -> Iterator[Project]:
    """A project of its own in a temporary directory; torn down by `compose down` and then by id, whatever the test
    did. Its ./out is owned by USER_IDS, as a user's `mkdir -p out` makes it."""
    directory = tmp_path / "anchor"
    directory.mkdir()
    for name in ("compose.yaml", "compose.cpu.yaml"):
        shutil.copy(REPO / name, directory / name)
    shutil.copytree(REPO / "compose", directory / "compose")
    (directory / "out").mkdir()
    if os.geteuid() == 0:
        os.chown(directory / "out", *USER_IDS)
    stack = Project(directory, f"anchor-test-{uuid.uuid4().hex[:10]}", clean_environment(docker_config))
    leftovers.current().note("compose", project=stack.name)
    try:
        yield stack
    finally:
        # By name: without its .env (a test that failed early) the project would be named after the directory.
        stack.compose("--project-name", stack.name, "--profile", "s3", "down", "--volumes", "--remove-orphans",
                      "--timeout", "5", timeout=120)  # fmt: skip
        stack.remove_leftovers()


def stack_settings(built: Images, **more: str) -> dict[str, str]:
    """The .env of README's routine on a machine without a GPU, with the mock engine and this tree's job image."""
    return {
        "ANCHOR_USER": f"{USER_IDS[0]}:{USER_IDS[1]}",
        "COMPOSE_FILE": "compose.yaml:compose.cpu.yaml",
        "VOICEVOX_IMAGE": built.engine_mock,
        "ANCHOR_JOB_IMAGE": built.job,
        **more,
    }


def _feed_route(method: str, path: str, body: bytes) -> Reply:
    if path == "/feed.xml":
        return Reply(200, FEED.read_bytes(), "application/rss+xml; charset=utf-8")
    return Reply(404, b"not found", "text/plain")


@contextmanager
def feed_on_network(project: Project) -> Iterator[ScriptedServer]:
    """The sample feed served on the host's address of the project's network. The network exists once a service
    was created: `docker compose create voicevox` makes it (and the engine's container, which `run` then starts
    and waits for, as on a user's first run)."""
    created = project.compose("create", "voicevox")
    assert created.returncode == 0, created.stderr
    with scripted_server(_feed_route, host=project.gateway()) as server:
        yield server


def last_json_line(text: str) -> dict[str, Any]:
    line = text.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(line)
    return result


def last_result(log: str) -> dict[str, Any]:
    """The run's result in a log that holds its stdout and stderr both (the crontab line's `>> anchor.log 2>&1`):
    the last line that is a result document. Not simply the last line: the job writes its last event to stderr
    before the result to stdout, but `docker compose run` relays the container's two streams separately, and under
    load the event can land after the result (seen in a cold run, and again with four test workers)."""
    for line in reversed(log.strip().splitlines()):
        if line.startswith("{") and '"schemaVersion"' in line:
            result: dict[str, Any] = json.loads(line)
            return result
    raise AssertionError(f"no result line in the log:\n{log[-2000:]}")


def readme_crontab() -> str:
    """The ```crontab block of README.md's one-PC section: the test runs what a user copies."""
    block = re.search(r"```crontab\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert block, "no ```crontab block in README.md"
    return block.group(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compose: runs compose.yaml with Docker Compose as a user runs it")
