"""The NewsBroadcast spec: defaults, validation errors that name the field, and the JSON schema snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.load import SpecError, load_broadcast, parse_broadcast
from api.v1alpha1 import NewsBroadcastSpec, spec_json_schema
from tests.support.builders import a_broadcast

SNAPSHOT = Path(__file__).parent / "snapshots" / "spec.schema.json"


def test_minimal_spec_is_one_feed_url_and_gets_the_documented_defaults() -> None:
    broadcast = parse_broadcast(
        {
            "apiVersion": "anchor.news/v1alpha1",
            "kind": "NewsBroadcast",
            "metadata": {"name": "morning"},
            "spec": {"sources": {"feeds": [{"url": "https://news.example.com/rss"}]}},
        }
    )
    spec = broadcast.spec
    assert spec.script.language == "ja"
    assert spec.voice.style_id == 3
    assert spec.video.size == (1920, 1080)
    assert spec.video.fps == 30
    assert spec.output.directory == "out" and spec.output.s3 is None
    assert spec.schedule is None and spec.time_zone == "UTC" and spec.suspend is False
    assert (spec.gpu.count, spec.gpu.resource_name) == (1, "nvidia.com/gpu")


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        (lambda b: b.voice(styleId="zundamon"), "spec.voice.styleId", "valid integer"),
        (lambda b: b.voice(speedScale=5), "spec.voice.speedScale", "less than or equal to 2"),
        (
            lambda b: b.video(resolution="800x600"),
            "spec.video.resolution",
            "'1920x1080', '1280x720' or '1080x1920'",
        ),
        (lambda b: b.video(theme={"accent": "red"}), "spec.video.theme.accent", "pattern"),
        (lambda b: b.language("fr"), "spec.script.language", "'ja' or 'en'"),
        (lambda b: b.set(timeZone="Mars/Olympus"), "spec.timeZone", "IANA"),
        (lambda b: b.set(schedule="every morning"), "spec.schedule", "5 fields"),
        (lambda b: b.feed("gopher://old.example/feed"), "spec.sources.feeds.1.url", "http, https, file"),
        (lambda b: b.sources(allowedAddresses=["not-a-net"]), "spec.sources.allowedAddresses", "CIDR"),
        (lambda b: b.s3(endpoint="minio:9000", bucket="Bad_Bucket"), "spec.output.s3.bucket", "pattern"),
        (lambda b: b.voice(credit=""), "spec.voice.credit", "at least 1 character"),
        (lambda b: b.voice(stlyeId=3), "spec.voice.stlyeId", "unknown field"),
        (lambda b: b.set(gpu={"count": -1}), "spec.gpu.count", "greater than or equal to 0"),
    ],
)
def test_invalid_spec_names_the_field_and_what_is_allowed(change: Any, field: str, hint: str) -> None:
    builder = a_broadcast().feed("https://news.example.com/rss")
    change(builder)
    with pytest.raises(SpecError) as caught:
        parse_broadcast(builder.dict())
    message = str(caught.value)
    line = next((line for line in message.splitlines() if line.strip().startswith(field + ":")), None)
    assert line is not None, message
    assert hint in line


def test_snake_case_field_names_are_refused_so_yaml_matches_kubectl_explain() -> None:
    builder = a_broadcast().voice(style_id=3)
    with pytest.raises(SpecError, match=r"spec\.voice\.style_id: unknown field"):
        parse_broadcast(builder.dict())


def test_wrong_kind_and_bad_name_are_explained() -> None:
    document = a_broadcast().dict()
    with pytest.raises(SpecError, match="kind is 'Deployment'"):
        parse_broadcast({**document, "kind": "Deployment"})
    with pytest.raises(SpecError, match=r"metadata\.name: .*not a valid name"):
        parse_broadcast({**document, "metadata": {"name": "Morning_News"}})


def test_load_from_yaml_file_picks_the_broadcast_among_other_documents(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}}
    path.write_text(yaml.safe_dump_all([secret, a_broadcast("evening").dict()]), encoding="utf-8")
    assert load_broadcast(path).name == "evening"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("spec: [unclosed", "not valid YAML"),
        ("", "the file is empty"),
        ("- a\n- b\n", "got a list"),
    ],
)
def test_unreadable_yaml_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError, match=expected):
        load_broadcast(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_broadcast(tmp_path / "nope.yaml")


def _properties(schema: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) in the spec schema, following $refs."""
    found = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        for option in node.get("anyOf", []):
            walk(option, path)
        if "items" in node:
            walk(node["items"], path + "[]")
        for name, prop in node.get("properties", {}).items():
            found.append((f"{path}.{name}", prop))
            walk(prop, f"{path}.{name}")

    walk(schema, "spec")
    return found


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    schema = spec_json_schema()
    undocumented = [path for path, prop in _properties(schema, schema["$defs"]) if not prop.get("description")]
    assert undocumented == []
    assert len(_properties(schema, schema["$defs"])) > 40


def test_schema_matches_the_committed_snapshot() -> None:
    """A change to the spec must be deliberate: regenerate with `make schema` and review the diff."""
    current = json.loads(json.dumps(spec_json_schema(), ensure_ascii=False))
    assert current == json.loads(SNAPSHOT.read_text(encoding="utf-8")), "spec changed: run `make schema`"


def test_spec_models_are_immutable() -> None:
    spec = a_broadcast().model().spec
    with pytest.raises(Exception, match="frozen"):
        spec.suspend = True  # type: ignore[misc]
    assert isinstance(spec, NewsBroadcastSpec)


def test_without_a_cast_the_one_anchor_is_spec_voice_named_by_spec_script() -> None:
    spec = parse_broadcast(a_broadcast().feed("https://n.example/rss").voice(styleId=2, speedScale=1.2)
                           .script(anchorName="めたん").dict()).spec  # fmt: skip
    (anchor,) = spec.members
    assert (anchor.name, anchor.style_id, anchor.speed_scale) == ("めたん", 2, 1.2)
    assert spec.script.format == "monologue"


def test_a_cast_gives_each_member_a_voice_and_spec_voice_keeps_only_the_engine() -> None:
    spec = parse_broadcast(
        a_broadcast()
        .feed("https://n.example/rss")
        .voice(engineUrl="http://engine.example:50021")
        .script(format="dialogue")
        .set(
            cast=[
                {"name": "四国めたん", "styleId": 2},
                {"name": "ずんだもん", "pitchScale": 0.05, "credit": "VOICEVOX:ずんだもん"},
            ]
        )
        .dict()
    ).spec
    assert [(m.name, m.style_id, m.pitch_scale, m.credit) for m in spec.members] == [
        ("四国めたん", 2, 0.0, None),
        ("ずんだもん", 3, 0.05, "VOICEVOX:ずんだもん"),
    ]
    assert spec.voice.engine_url == "http://engine.example:50021"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda b: b.voice(styleId=2).set(cast=[{"name": "a"}]), "both give the voice (spec.voice.styleId)"),
        (lambda b: b.script(anchorName="a").set(cast=[{"name": "b"}]), "spec.script.anchorName and spec.cast both"),
        (lambda b: b.set(cast=[{"name": "a"}, {"name": "a"}]), "spec.cast names 'a' more than once"),
        (lambda b: b.script(format="dialogue"), "dialogue, which needs at least two presenters in spec.cast; it has 1"),
        (lambda b: b.script(format="dialogue").set(cast=[{"name": "a"}]), "it has 1"),
        (lambda b: b.script(format="chat"), "'monologue' or 'dialogue'"),
        (lambda b: b.set(cast=[]), "at least 1 item"),
        (lambda b: b.set(cast=[{"name": n} for n in "abcd"]), "at most 3 items"),
        (lambda b: b.set(cast=[{"name": "a", "engineUrl": "http://e"}]), "engineUrl"),  # the engine is spec.voice's
    ],
)  # fmt: skip
def test_a_cast_that_contradicts_itself_is_refused_naming_the_fields(change: Any, words: str) -> None:
    builder = a_broadcast().feed("https://news.example.com/rss")
    change(builder)
    with pytest.raises(SpecError) as caught:
        parse_broadcast(builder.dict())
    assert words in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"audio": {"music": {"file": "bed.mp3", "url": "https://m.example/bed.mp3"}}}, "file and url are both given"),
        ({"cast": [{"name": "a", "portrait": {}}]}, "give exactly one of file, url and object (none is given)"),
        ({"audio": {"music": {"object": "bed.mp3"}}}, "spec.audio.music.object names an object in spec.output.s3"),
        ({"cast": [{"name": "a", "portrait": {"object": "a.psd"}}]}, "spec.cast[0].portrait.object names an object"),
        ({"cast": [{"name": "a", "position": "centre"}]}, "'left' or 'right'"),
        ({"audio": {"loudness": {"integratedLufs": -3}}}, "integratedLufs"),
        ({"audio": {"music": {"file": "bed.mp3", "duckDb": 3}}}, "duckDb"),
    ],
)
def test_media_sources_and_the_sound_are_checked_naming_the_field(change: dict[str, Any], words: str) -> None:
    document = a_broadcast().feed("https://news.example.com/rss").dict()
    document["spec"].update(change)
    with pytest.raises(SpecError) as refused:
        parse_broadcast(document)
    assert words in str(refused.value)
