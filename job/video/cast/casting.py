"""Each member's portrait for the run: their own (a folder of PNGs or a PSD, as a local file: the spec's file, or
what the pipeline fetched from its url or object), else one of the built-in characters. A portrait that cannot
be read is one warning naming the member, the file and the reason, and the member appears as a built-in character:
a broadcast is never lost to a picture.
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
    base_dir: Path | None = None,
    warn: Callable[[str], None] | None = None,
    field: str = "spec.cast",
) -> list[Portrait]:
    """Every member's portrait, in cast order. `files`: a member's portrait as a local file, by name (fetched by the
    pipeline; a member whose spec names a file is looked up under `base_dir`). Built-in characters are drawn
    `height` pixels tall."""
    found = []
    for number, member in enumerate(members):
        portrait = None
        path = files.get(member.name)
        if path is None and member.portrait is not None and member.portrait.file is not None:
            path = Path(member.portrait.file).expanduser()
            path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
        if path is not None and member.portrait is not None:
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
