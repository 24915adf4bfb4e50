"""Publishing a run to a local directory: every file, hashes in the manifest, the manifest last, atomic re-runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from api.v1alpha1 import Output
from job.model import Artifact, ConfigError
from job.publish.store import check_output, publish
from tests.support.builders import a_broadcast

METADATA = {"broadcast": "morning", "runId": "run-1", "title": "朝のニュース", "credits": ["VOICEVOX:ずんだもん"]}


def _output(directory: Path | str) -> Output:
    return a_broadcast().output(directory=str(directory)).model().spec.output


def _artifacts(scratch: Path, tag: str = "first") -> list[Artifact]:
    scratch.mkdir(parents=True, exist_ok=True)
    files = {
        "video.mp4": (os.urandom(3 << 20) + tag.encode(), "video/mp4"),  # several copy chunks
        "thumbnail.jpg": (b"\xff\xd8\xff" + tag.encode(), "image/jpeg"),
        "subtitles.srt": (f"1\n00:00:00,000 --> 00:00:01,000\nこんにちは {tag}\n".encode(), "application/x-subrip"),
        "credits.txt": (f"VOICEVOX:ずんだもん {tag}\n".encode(), "text/plain; charset=utf-8"),
    }
    artifacts = []
    for name, (data, kind) in files.items():
        (scratch / name).write_bytes(data)
        artifacts.append(Artifact(name, scratch / name, kind))
    return artifacts


def _manifest(run_dir: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return document


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def test_every_artifact_lands_with_its_hash_in_the_manifest(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path / "scratch")
    out = tmp_path / "out"
    publication = publish(artifacts, manifest=METADATA, output=_output(out), broadcast="morning", run_id="run-1")

    run_dir = out / "morning" / "run-1"
    assert {p.name for p in run_dir.iterdir()} == {a.name for a in artifacts} | {"manifest.json"}
    manifest = _manifest(run_dir)
    assert {k: manifest[k] for k in METADATA} == METADATA
    assert "朝のニュース" in (run_dir / "manifest.json").read_text(encoding="utf-8"), "UTF-8, not \\u escapes"
    entries = manifest["objects"]
    assert isinstance(entries, list)
    assert [e["name"] for e in entries] == [a.name for a in artifacts]
    for entry, artifact in zip(entries, artifacts, strict=True):
        data = (run_dir / artifact.name).read_bytes()
        assert data == artifact.path.read_bytes()
        assert entry == {
            "name": artifact.name,
            "path": str(run_dir / artifact.name),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "contentType": artifact.content_type,
        }

    assert publication.location == str(run_dir)
    assert publication.video == str(run_dir / "video.mp4")
    assert publication.video_url == (run_dir / "video.mp4").as_uri()
    assert publication.manifest == str(run_dir / "manifest.json")
    assert [(o.name, o.sha256) for o in publication.objects] == [(e["name"], e["sha256"]) for e in entries]
    assert [p.name for p in (out / "morning").iterdir()] == ["run-1"], "no temporary directory left behind"
    assert run_dir.stat().st_mode & 0o777 == 0o755, "readable by whoever serves the directory (the broadcast's page)"


def test_the_manifest_is_written_after_every_file_and_the_run_appears_whole(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path / "scratch")
    out = tmp_path / "out"
    seen: list[tuple[int, int]] = []

    def progress(step: str, done: int, total: int) -> None:
        # Called while files are still being copied: nothing may be visible yet, and no manifest anywhere.
        assert step == "store"
        assert not (out / "morning" / "run-1").exists()
        assert not list(out.rglob("manifest.json"))
        seen.append((done, total))

    publish(artifacts, manifest=METADATA, output=_output(out), broadcast="morning", run_id="run-1", progress=progress)

    total = sum(a.path.stat().st_size for a in artifacts)
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    run_dir = out / "morning" / "run-1"
    others = [(run_dir / a.name).stat().st_mtime_ns for a in artifacts]
    assert (run_dir / "manifest.json").stat().st_mtime_ns >= max(others)


def test_the_same_run_id_replaces_the_previous_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = [*_artifacts(tmp_path / "one"), Artifact("extra.json", tmp_path / "one" / "credits.txt", "")]
    publish(first, manifest={"runId": "run-1", "n": 1}, output=_output(out), broadcast="morning", run_id="run-1")
    second = _artifacts(tmp_path / "two", tag="second")
    publish(second, manifest={"runId": "run-1", "n": 2}, output=_output(out), broadcast="morning", run_id="run-1")

    run_dir = out / "morning" / "run-1"
    assert [p.name for p in (out / "morning").iterdir()] == ["run-1"]
    assert {p.name for p in run_dir.iterdir()} == {a.name for a in second} | {"manifest.json"}, "old files gone"
    assert _manifest(run_dir)["n"] == 2
    assert (run_dir / "credits.txt").read_bytes() == (tmp_path / "two" / "credits.txt").read_bytes()


def test_an_interrupted_rerun_leaves_the_previous_run_intact(tmp_path: Path) -> None:
    out = tmp_path / "out"
    publish(_artifacts(tmp_path / "one"), manifest={"n": 1}, output=_output(out), broadcast="morning", run_id="run-1")
    before = _snapshot(out / "morning" / "run-1")

    second = _artifacts(tmp_path / "two", tag="second")
    first_file = second[0].path.stat().st_size

    def interrupt_in_the_second_file(step: str, done: int, total: int) -> None:
        if done > first_file:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish(
            second,
            manifest={"n": 2},
            output=_output(out),
            broadcast="morning",
            run_id="run-1",
            progress=interrupt_in_the_second_file,
        )
    assert [p.name for p in (out / "morning").iterdir()] == ["run-1"], "the temporary directory is removed"
    assert _snapshot(out / "morning" / "run-1") == before


def test_an_unreadable_artifact_midway_publishes_nothing(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path / "scratch")
    (tmp_path / "not-a-file").mkdir()
    artifacts.insert(2, Artifact("script.json", tmp_path / "not-a-file", "application/json"))
    out = tmp_path / "out"
    with pytest.raises(IsADirectoryError):  # scratch space is the pipeline's: a bug, not a setting
        publish(artifacts, manifest=METADATA, output=_output(out), broadcast="morning", run_id="run-1")
    assert list((out / "morning").iterdir()) == []


def test_an_output_directory_under_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as failure:
        publish(
            _artifacts(tmp_path / "scratch"),
            manifest=METADATA,
            output=_output(tmp_path / "file" / "out"),
            broadcast="morning",
            run_id="run-1",
        )
    message = str(failure.value)
    assert "spec.output.directory" in message and "Not a directory" in message
    assert str(tmp_path / "file" / "out") in message


def test_an_output_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "morning").write_text("in the way")
    with pytest.raises(ConfigError, match=r"spec\.output\.directory"):
        publish(
            _artifacts(tmp_path / "scratch"),
            manifest=METADATA,
            output=_output(tmp_path / "out"),
            broadcast="morning",
            run_id="run-1",
        )
    assert (tmp_path / "out" / "morning").read_text() == "in the way"


def test_a_relative_directory_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    publication = publish(
        _artifacts(tmp_path / "scratch"),
        manifest=METADATA,
        output=_output("out"),
        broadcast="morning",
        run_id="run-1",
        base_dir=tmp_path / "elsewhere",
    )
    assert publication.location == str(work / "out" / "morning" / "run-1")
    assert (work / "out" / "morning" / "run-1" / "manifest.json").is_file()


def test_leftovers_of_a_crashed_attempt_are_swept(tmp_path: Path) -> None:
    parent = tmp_path / "out" / "morning"
    for leftover in (".run-1.tmp-dead0000", ".run-1.old-beef0000"):
        (parent / leftover).mkdir(parents=True)
        (parent / leftover / "video.mp4").write_bytes(b"half")
    (parent / ".run-2.tmp-live0000").mkdir()  # another run's staging is not this run's to remove
    publish(
        _artifacts(tmp_path / "scratch"),
        manifest=METADATA,
        output=_output(tmp_path / "out"),
        broadcast="morning",
        run_id="run-1",
    )
    assert sorted(p.name for p in parent.iterdir()) == [".run-2.tmp-live0000", "run-1"]


@pytest.mark.parametrize("name", ["manifest.json", "../video.mp4", ".hidden"])
def test_an_artifact_cannot_take_a_reserved_or_path_like_name(tmp_path: Path, name: str) -> None:
    artifacts = [*_artifacts(tmp_path / "scratch"), Artifact(name, tmp_path / "scratch" / "credits.txt", "")]
    with pytest.raises(ValueError, match="artifact name"):
        publish(artifacts, manifest=METADATA, output=_output(tmp_path / "out"), broadcast="morning", run_id="run-1")
    assert not (tmp_path / "out").exists()


def test_output_is_checked_before_the_run_and_the_check_leaves_nothing(tmp_path: Path) -> None:
    check_output(_output(tmp_path / "out"), "morning")
    assert [p.name for p in (tmp_path / "out" / "morning").iterdir()] == []
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(ConfigError, match=r"spec\.output\.directory"):
        check_output(_output(tmp_path / "file" / "out"), "morning")
