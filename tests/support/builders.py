"""Fluent builders for test objects: `a_broadcast().feed(url).language("en").yaml()` instead of copied dicts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Self

import yaml

from api.v1alpha1 import NewsBroadcast


class BroadcastBuilder:
    def __init__(self, name: str = "test-news") -> None:
        self.document: dict[str, Any] = {
            "apiVersion": "anchor.news/v1alpha1",
            "kind": "NewsBroadcast",
            "metadata": {"name": name},
            # No article-page lookups for story pictures unless a test asks: the sample feeds' stories link to
            # example.com hosts, and a test's traffic stays on 127.0.0.1 (DNS included).
            "spec": {"sources": {"feeds": []}, "video": {"storyImages": False}},
        }

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.document["spec"]
        return spec

    def _section(self, name: str) -> dict[str, Any]:
        section: dict[str, Any] = self.spec.setdefault(name, {})
        return section

    def feed(self, url: str, **fields: Any) -> Self:
        self.spec["sources"]["feeds"].append({"url": url, **fields})
        return self

    def sources(self, **fields: Any) -> Self:
        self.spec["sources"].update(fields)
        return self

    def script(self, **fields: Any) -> Self:
        self._section("script").update(fields)
        return self

    def language(self, language: str) -> Self:
        return self.script(language=language)

    def voice(self, **fields: Any) -> Self:
        self._section("voice").update(fields)
        return self

    def video(self, **fields: Any) -> Self:
        self._section("video").update(fields)
        return self

    def output(self, **fields: Any) -> Self:
        self._section("output").update(fields)
        return self

    def s3(self, **fields: Any) -> Self:
        return self.output(s3=fields)

    def set(self, **fields: Any) -> Self:
        """Top-level spec fields: schedule, timeZone, suspend, gpu."""
        self.spec.update(fields)
        return self

    def in_namespace(self, namespace: str) -> Self:
        self.document["metadata"]["namespace"] = namespace
        return self

    def dict(self) -> dict[str, Any]:
        document = copy.deepcopy(self.document)
        if not document["spec"]["sources"]["feeds"]:
            document["spec"]["sources"]["feeds"] = [{"url": "https://news.example.com/rss.xml"}]
        return document

    def model(self) -> NewsBroadcast:
        return NewsBroadcast.model_validate(self.dict())

    def write(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path


def a_broadcast(name: str = "test-news") -> BroadcastBuilder:
    return BroadcastBuilder(name)
