"""Reading a NewsBroadcast from YAML, with errors that name the field, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from api.v1alpha1 import API_VERSION, KIND, NewsBroadcast

MAX_YAML_BYTES = 1024 * 1024


class SpecError(ValueError):
    """The broadcast YAML is not a valid NewsBroadcast. The message lists every problem, one per line."""


def parse_broadcast(document: Any, source: str = "<input>") -> NewsBroadcast:
    if not isinstance(document, dict):
        raise SpecError(f"{source}: expected a {KIND} object (apiVersion: {API_VERSION}), got {_kind_of(document)}")
    try:
        return NewsBroadcast.model_validate(document)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid {KIND}:\n{describe(exc)}") from None


def load_broadcast(path: Path) -> NewsBroadcast:
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise SpecError(f"{path}: larger than {MAX_YAML_BYTES} bytes; is this really a {KIND}?")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not documents:
        raise SpecError(f"{path}: the file is empty; expected a {KIND} (apiVersion: {API_VERSION})")
    broadcasts = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if len(broadcasts) != 1:
        found = f"{len(broadcasts)} {KIND} documents" if broadcasts else f"no {KIND} document"
        if not broadcasts and len(documents) == 1:
            return parse_broadcast(documents[0], str(path))  # let the validator say what is wrong with it
        raise SpecError(f"{path}: expected exactly one {KIND} document, found {found}")
    return parse_broadcast(broadcasts[0], str(path))


def describe(exc: ValidationError) -> str:
    """One line per problem: `spec.voice.styleId: <what is wrong> (got <value>)`."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; fields are camelCase, see `kubectl explain nb.spec`)"
        elif error["type"] == "literal_error" and "expected" in error.get("ctx", {}):
            message = f"must be one of {error['ctx']['expected']}"
        value = error.get("input")
        shown = "" if error["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else _show(value)
        lines.append(f"  {where}: {message}{shown}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" (got {text})"


def _kind_of(value: Any) -> str:
    return "an empty document" if value is None else f"a {type(value).__name__}"
