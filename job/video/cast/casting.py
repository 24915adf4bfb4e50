"""Each member's portrait for the run: their own (a folder of PNGs or a PSD, as a local file the pipeline resolved:
the spec's file where it lies, or what it fetched from a url or object), else one of the built-in characters. A
portrait that cannot be read is one warning naming the member, the file and the reason, and the member appears as a
built-in character: a broadcast is never lost to a picture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from api.v1alpha1 import CastMember
from job.video.cast.builtin import builtin_portrait
from job.video.cast.folder import read_folder
from job.video.cast.portrait import Portrait, PortraitError


def portraits(
    members: Sequence[CastMember],
    files: Mapping[str, Path],
    height: int,
    *,
    warn: Callable[[str], None] | None = None,
    field: str = "spec.cast",
) -> list[Portrait]:
    """Every member's portrait, in cast order. `files`: each member's portrait as a local file, by name (job/assets.py
    resolves them). Built-in characters are drawn `height` pixels tall."""
    found = []
    for number, member in enumerate(members):
        portrait = None
        path = files.get(member.name)
        if path is not None:
            try:
                portrait = _read(path, member)
            except PortraitError as exc:
                if warn:
                    warn(
                        f"{field}[{number}].portrait ({member.name}): {exc}; {member.name} appears as a built-in "
                        "character instead"
                    )
        found.append(portrait or builtin_portrait(number, height))
    return found


def _read(path: Path, member: CastMember) -> Portrait:
    if path.is_dir():
        return read_folder(path)
    if path.suffix.lower() == ".psd" or _is_psd(path):
        from job.video.cast.psd import read_psd  # psd-tools is imported only by a run that has a PSD to read

        return read_psd(path, member.portrait.layers if member.portrait else None)
    if not path.exists():
        raise PortraitError(f"there is no file or folder at {path}")
    raise PortraitError(f"{path} is neither a folder of PNGs nor a PSD file")


def _is_psd(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(4) == b"8BPS"
    except OSError:
        return False
