"""The spec's own media fetched for the render: a file where it lies, a URL through the guarded fetcher (bounded,
private addresses only when allowed, secrets kept out of messages), saved under a name of our own."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.v1alpha1 import MediaSource, NewsBroadcastSpec
from job.assets import AssetLimits, AssetUnavailable, local_file
from tests.support.builders import a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server

PSD = b"8BPS" + b"\0" * 60


def _route(method: str, path: str, body: bytes) -> Reply:
    if path.startswith("/big"):
        return Reply(200, b"x" * 5000, "application/octet-stream")
    if path.startswith("/missing"):
        return Reply(404, b"no", "text/plain")
    return Reply(200, PSD, "image/vnd.adobe.photoshop")


@pytest.fixture(scope="module")
def server() -> ScriptedServer:
    with scripted_server(_route) as running:
        yield running  # type: ignore[misc]


def _spec(allowed: list[str]) -> NewsBroadcastSpec:
    return NewsBroadcastSpec.model_validate(
        a_broadcast().sources(allowedAddresses=allowed).dict()["spec"]  # type: ignore[no-untyped-call]
    )


LIMITS = AssetLimits(1000, "a portrait")


def test_a_url_is_fetched_under_a_name_of_our_own(server: ScriptedServer, tmp_path: Path) -> None:
    spec = _spec(["127.0.0.1/32"])
    for url, name in ((f"{server.url}/a/anchor.PSD", "portrait.psd"), (f"{server.url}/a/..", "portrait")):
        got = local_file(
            MediaSource(url=url), "spec.cast[0].portrait", tmp_path, spec, {}, base_dir=None, limits=LIMITS
        )
        assert (got.name, got.read_bytes()) == (name, PSD)


def test_private_addresses_oversize_and_failures_are_refused_naming_the_field_and_no_secret(
    server: ScriptedServer, tmp_path: Path
) -> None:
    field = "spec.audio.music"
    with pytest.raises(AssetUnavailable, match=r"spec\.audio\.music\.url .*allowedAddresses"):
        local_file(MediaSource(url=f"{server.url}/a.mp3"), field, tmp_path, _spec([]), {}, base_dir=None, limits=LIMITS)
    allowed = _spec(["127.0.0.1/32"])
    with pytest.raises(AssetUnavailable, match=r"larger than|too large|at most"):
        local_file(MediaSource(url=f"{server.url}/big.mp3"), field, tmp_path, allowed, {}, base_dir=None, limits=LIMITS)
    secret = f"{server.url}/missing.mp3?X-Amz-Signature=s3cr3tsignature&token=hunter2"
    with pytest.raises(AssetUnavailable) as refused:
        local_file(MediaSource(url=secret), field, tmp_path, allowed, {}, base_dir=None, limits=LIMITS)
    assert "404" in str(refused.value) and "s3cr3t" not in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_file_is_used_where_it_lies_relative_to_the_yaml(tmp_path: Path) -> None:
    got = local_file(MediaSource(file="bed.flac"), "f", tmp_path / "x", _spec([]), {}, base_dir=tmp_path, limits=LIMITS)
    assert got == tmp_path / "bed.flac" and not (tmp_path / "x").exists()
