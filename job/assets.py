"""The spec's own media (the cast's portraits, the music bed) as local files for the render: a file is used where it
lies; a URL is fetched through the feeds' guarded fetcher (size and time limits, public addresses and
sources.allowedAddresses only); an object is read from the output's bucket with the run's credentials, bounded.

What cannot be had is an AssetUnavailable naming the field and the reason: the pipeline makes it a warning (the
member appears as a built-in character, the broadcast goes without its music), never a lost broadcast.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from api.netguard import AddressPolicy
from api.v1alpha1 import MediaSource, NewsBroadcastSpec
from job.news.fetch import FetchFailed, display_url, fetch
from job.shared import storage

PORTRAIT_BYTES = 64 * 1024 * 1024
"""The largest portrait fetched (a layered PSD at full size; the reader refuses larger ones unread as well)."""
MUSIC_BYTES = 50 * 1024 * 1024
"""The largest music bed fetched (about 50 minutes of 128 kbit/s MP3)."""


class AssetUnavailable(Exception):
    """A portrait or music bed that cannot be had; the message names the field and why."""


@dataclass(frozen=True)
class AssetLimits:
    """What fetching one asset may cost (job.news.fetch's FetchLimits)."""

    max_bytes: int
    document: str
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_redirects: int = 5
    allow_hint: str = "to allow it, list its network in spec.sources.allowedAddresses"

    @property
    def max_decoded_bytes(self) -> int:
        return self.max_bytes


def local_file(
    source: MediaSource,
    field: str,
    directory: Path,
    spec: NewsBroadcastSpec,
    env: Mapping[str, str],
    *,
    base_dir: Path | None,
    limits: AssetLimits,
) -> Path:
    """`source` as a file on this machine: its own path, or its bytes fetched into `directory`."""
    if source.file is not None:
        path = Path(source.file).expanduser()
        return path if path.is_absolute() else (base_dir or Path.cwd()) / path
    directory.mkdir(parents=True, exist_ok=True)
    if source.url is not None:
        target = directory / _name(limits, PurePosixPath(urlsplit(source.url).path).suffix)
        try:
            policy = AddressPolicy.of(False, spec.sources.allowed_addresses)
            document = fetch(source.url, base_dir=None, policy=policy, limits=limits, session=None)
        except (FetchFailed, ValueError) as exc:
            raise AssetUnavailable(f"{field}.url {display_url(source.url)}: {exc}") from None
        target.write_bytes(document.data)
        return target
    assert source.object is not None and spec.output.s3 is not None  # noqa: S101 - the spec's validation says so
    return _from_bucket(source.object, field, directory, spec, env, limits)


def _name(limits: AssetLimits, suffix: str) -> str:
    """A file name of our own (what it is, and the source's extension when it looks like one): a name from outside
    could be "..", or anything else."""
    kind = "portrait" if "portrait" in limits.document else "music"
    return kind + (suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else "")


def _from_bucket(
    key: str, field: str, directory: Path, spec: NewsBroadcastSpec, env: Mapping[str, str], limits: AssetLimits
) -> Path:
    s3 = spec.output.s3
    assert s3 is not None  # noqa: S101
    target = directory / _name(limits, PurePosixPath(key).suffix)
    try:
        with storage.s3_errors(s3, env, f"reading {field}.object {key}"):
            client = storage.s3_client(s3, env)
            size = client.stat_object(s3.bucket, key).size or 0
            if size > limits.max_bytes:
                most = f"at most {limits.max_bytes:,} are read for {limits.document}"
                raise AssetUnavailable(f"{field}.object {key} is {size:,} bytes; {most}")
            reply = client.get_object(s3.bucket, key)
            try:
                data = reply.read(limits.max_bytes + 1)
            finally:
                reply.close()
                reply.release_conn()
    except AssetUnavailable:
        raise
    except Exception as exc:  # the store's errors, already worded: missing object, refused credentials, no network
        raise AssetUnavailable(f"{field}.object: {exc}") from None
    if len(data) > limits.max_bytes:
        raise AssetUnavailable(f"{field}.object {key} is larger than {limits.max_bytes:,} bytes")
    target.write_bytes(data)
    return target
