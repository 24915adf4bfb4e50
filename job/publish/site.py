"""The broadcast's page and feeds, written beside its runs after each published run (built by job/publish/listing.py and
job/publish/feeds.py):

    <output>/<broadcast>/index.html    every listed run with its player, subtitles, stories and credits
    <output>/<broadcast>/podcast.xml   the runs' narration.m4a as an RSS podcast
    <output>/<broadcast>/videos.xml    the same feed with the runs' video.mp4
    <output>/<broadcast>/cover.jpg     the feeds' square cover, from the newest run's thumbnail

The runs are found by their manifests, <output>/<broadcast>/<run>/manifest.json (names that start with "." are the
broadcast's state or someone's temporary files, never runs), each read bounded in size; a manifest that cannot be
read or used leaves its run out and is reported. Each file is replaced atomically, so a reader gets the old page or
the new one and never half of one: in a bucket it is uploaded under a temporary key, copied to its name on the
server and the temporary key deleted; in a directory it is written to a temporary file beside it, synced, renamed.

Two runs that end together both write the listing, and the one that read the manifests first may write last,
over a listing that had the other's run. So after writing, the runs are listed again: when one appeared (or a
manifest was rewritten) since they were read, the listing is built and written anew, at most PASSES times in all.
That narrows the window to the last pass rather than closing it (a bucket has no lock to hold); the next run's
listing catches whatever still slips through.

Links go under spec.output.publicBaseUrl when it is set. Without it they are presigned in a bucket (for
s3.presignExpirySeconds, and the page says until when) and, in a directory, relative on the page (the directory
can be served or opened as it is) and file:// URIs in the feeds.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from api.v1alpha1 import NewsBroadcast, S3Output
from job.publish import feeds, listing, store
from job.publish.listing import COVER, PAGE, PODCAST, THUMBNAIL, VIDEOS, Links, ListedRun, UnlistedRun
from job.shared import storage

MANIFEST_LIMIT = 1 << 20
"""Largest manifest.json read; a larger one leaves its run out."""
THUMBNAIL_LIMIT = 16 << 20
PASSES = 3
"""Most times the listing is built and written in one call, while runs keep appearing as it writes."""
LEFTOVER_AGE = timedelta(hours=1)
"""A temporary file of the listing older than this was left by a writer that died: it is deleted."""
# A CDN or browser in front of the bucket must ask again for the page and feeds, which change after each run.
_CACHE_CONTROL: dict[str, str | list[str] | tuple[str]] = {"Cache-Control": "no-cache"}
_TEMPORARY = re.compile(r"^\.(?:" + "|".join(re.escape(name) for name in listing.LISTING_FILES) + r")\.tmp-\w{8}$")


@dataclass(frozen=True)
class Written:
    """What a listing write did."""

    page_url: str
    runs: int
    """Runs listed on the page."""
    left_out: tuple[str, ...] = ()
    """Runs whose manifest could not be used, each with why ("run-7: its manifest.json is not JSON")."""


class _Shelf(Protocol):
    """Where the broadcast's runs are published, as the listing reads and writes it."""

    page_links: Links
    feed_links: Links
    page_url: str
    expires_at: datetime | None

    def runs(self) -> list[tuple[str, datetime]]:
        """(run id, when its manifest was written) of every directory or prefix with a manifest.json."""
        ...

    def read(self, run_id: str, name: str, limit: int) -> bytes | None:
        """A run's file, or None when it is missing or larger than `limit` bytes."""
        ...

    def write(self, name: str, data: bytes, content_type: str) -> None:
        """Replace a listing file at the broadcast's level, atomically."""
        ...

    def sweep(self) -> None:
        """Delete the temporary files of writers that died (older than LEFTOVER_AGE)."""
        ...


def write_listing(
    broadcast: NewsBroadcast, env: Mapping[str, str] = os.environ, *, now: datetime | None = None
) -> Written:
    """Rebuild and write the broadcast's page, feeds and cover from its published runs; return the page's URL.

    Raises ConfigError/TransientError (the store's, for a bucket) or OSError (a directory) when they cannot be
    read or written; the caller makes that a warning, since the run itself is published already."""
    output = broadcast.spec.output
    now = now or datetime.now(UTC)
    if output.s3 is None:
        root = Path(output.directory).absolute() / broadcast.name
        return _write(broadcast, _Directory(root, output.public_base_url, broadcast.name), now)
    s3 = output.s3
    with storage.s3_errors(s3, env, "the broadcast's page and feeds were not updated"):
        shelf = _Bucket(storage.s3_client(s3, env), s3, broadcast.name, output.public_base_url, now)
        return _write(broadcast, shelf, now)


def _write(broadcast: NewsBroadcast, shelf: _Shelf, now: datetime) -> Written:
    found = shelf.runs()
    for _ in range(PASSES):
        written = _write_once(broadcast, shelf, found, now)
        seen, found = found, shelf.runs()
        if set(found) <= set(seen):  # no run, nor a newer manifest, that this listing lacks
            break
    shelf.sweep()
    return written


def _write_once(broadcast: NewsBroadcast, shelf: _Shelf, found: list[tuple[str, datetime]], now: datetime) -> Written:
    count = broadcast.spec.output.listing.runs
    runs, left_out = _read_runs(shelf, found, count)
    catalogue = listing.catalogue(listing.channel_of(broadcast), runs, count, now)
    newest = catalogue.runs[0] if catalogue.runs else None
    thumbnail = shelf.read(newest.run_id, THUMBNAIL, THUMBNAIL_LIMIT) if newest else None
    # The page last: it links the feeds and the cover, which are there by then.
    shelf.write(COVER, listing.cover_jpeg(thumbnail), listing.COVER_TYPE)
    shelf.write(PODCAST, feeds.podcast_feed(catalogue, shelf.feed_links), listing.FEED_TYPE)
    shelf.write(VIDEOS, feeds.video_feed(catalogue, shelf.feed_links), listing.FEED_TYPE)
    page = listing.page(catalogue, shelf.page_links, expires_at=shelf.expires_at)
    shelf.write(PAGE, page.encode("utf-8"), listing.PAGE_TYPE)
    return Written(shelf.page_url, len(catalogue.runs), tuple(left_out))


def _read_runs(shelf: _Shelf, found: list[tuple[str, datetime]], count: int) -> tuple[list[ListedRun], list[str]]:
    """The runs to list among those `found`, read from the most recently written manifests on: enough for `count`
    usable ones, with a bound on how many are tried, so a broadcast with years of runs reads a few dozen
    manifests, not thousands."""
    candidates = sorted(found, key=lambda run: (run[1], run[0]), reverse=True)
    # A run re-published later than newer ones is read early; a few more than `count` keep the newest by air time.
    wanted, tries = count + 5, 2 * count + 20
    runs: list[ListedRun] = []
    left_out: list[str] = []
    for run_id, _ in candidates[:tries]:
        data = shelf.read(run_id, store.MANIFEST, MANIFEST_LIMIT)
        if data is None:
            left_out.append(f"{run_id}: its {store.MANIFEST} is gone or larger than {MANIFEST_LIMIT >> 20} MiB")
            continue
        try:
            runs.append(listing.read_run(run_id, data))
        except UnlistedRun as exc:
            left_out.append(f"{run_id}: {exc}")
        if len(runs) >= wanted:
            break
    return runs, left_out


def _public_links(base: str, broadcast: str) -> Links:
    root = f"{base.rstrip('/')}/{quote(broadcast)}"
    return Links(
        run_file=lambda run, name: f"{root}/{quote(run)}/{quote(name)}",
        broadcast_file=lambda name: f"{root}/{quote(name)}",
        permanent=lambda name: f"{root}/{quote(name)}",
    )


# -- a local directory -----------------------------------------------------------------------------------------


class _Directory:
    def __init__(self, root: Path, public_base: str | None, broadcast: str) -> None:
        self.root = root
        self.expires_at: datetime | None = None

        def uri(name: str) -> str:
            return (root / name).as_uri()

        if public_base:
            self.page_links = self.feed_links = _public_links(public_base, broadcast)
        else:
            # Relative on the page, so the directory works wherever it is served or copied; a feed reader needs
            # absolute URLs.
            self.page_links = Links(lambda run, name: f"{quote(run)}/{quote(name)}", quote, uri)
            self.feed_links = Links(lambda run, name: (root / run / name).as_uri(), uri, uri)
        self.page_url = self.page_links.broadcast_file(PAGE) if public_base else uri(PAGE)

    def runs(self) -> list[tuple[str, datetime]]:
        found = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                written = (Path(entry.path) / store.MANIFEST).stat().st_mtime
            except OSError:
                continue  # a directory without a manifest is not a published run
            found.append((entry.name, datetime.fromtimestamp(written, UTC)))
        return found

    def read(self, run_id: str, name: str, limit: int) -> bytes | None:
        path = self.root / run_id / name
        try:
            if not path.is_file():  # not a FIFO or a device, which could block or never end
                return None
            with path.open("rb") as file:
                data = file.read(limit + 1)
        except OSError:
            return None
        return data if len(data) <= limit else None

    def write(self, name: str, data: bytes, content_type: str) -> None:
        del content_type  # a directory has none; whoever serves it tells by the suffix
        storage.replace_file(self.root / name, data, temporary_prefix=f".{name}.tmp-")

    def sweep(self) -> None:
        oldest = time.time() - LEFTOVER_AGE.total_seconds()
        for path in self.root.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                if _TEMPORARY.match(path.name) and path.stat().st_mtime < oldest:
                    path.unlink()


# -- a bucket --------------------------------------------------------------------------------------------------


class _Bucket:
    def __init__(self, client: Minio, s3: S3Output, broadcast: str, public_base: str | None, now: datetime) -> None:
        self.client, self.bucket, self.now = client, s3.bucket, now
        self.base = "".join(f"{part}/" for part in s3.prefix.split("/") if part) + broadcast + "/"
        self.leftovers: set[str] = set()  # runs() is called on every pass: each leftover deleted once
        if public_base:
            self.page_links = self.feed_links = _public_links(public_base, broadcast)
            self.expires_at: datetime | None = None
        else:
            lifetime = timedelta(seconds=s3.presign_expiry_seconds)

            def presign(key: str) -> str:
                # Dated `now`, so the links expire exactly when the page says (to the minute, rounded down).
                return client.presigned_get_object(s3.bucket, key, expires=lifetime, request_date=now)

            def permanent(name: str) -> str:
                return f"{s3.endpoint}/{s3.bucket}/{self.base}{name}"

            self.page_links = self.feed_links = Links(
                lambda run, name: presign(f"{self.base}{run}/{name}"), lambda name: presign(self.base + name), permanent
            )
            self.expires_at = listing.expiry(now, s3.presign_expiry_seconds)
        self.page_url = self.page_links.broadcast_file(PAGE)

    def runs(self) -> list[tuple[str, datetime]]:
        found = []
        for item in self.client.list_objects(self.bucket, prefix=self.base, recursive=True):
            name = str(item.object_name).removeprefix(self.base)
            parts = name.split("/")
            if len(parts) == 1 and _TEMPORARY.match(name) and item.last_modified:
                if item.last_modified < self.now - LEFTOVER_AGE:
                    self.leftovers.add(self.base + name)
            elif len(parts) == 2 and parts[1] == store.MANIFEST and not parts[0].startswith("."):
                found.append((parts[0], item.last_modified or datetime.fromtimestamp(0, UTC)))
        return found

    def read(self, run_id: str, name: str, limit: int) -> bytes | None:
        try:
            reply = self.client.get_object(self.bucket, f"{self.base}{run_id}/{name}", offset=0, length=limit + 1)
        except S3Error as exc:
            if exc.code == "InvalidRange":  # no byte 0 to start from: the object is empty
                return b""
            if exc.code == "NoSuchKey":
                return None
            raise
        try:
            data: bytes = reply.read(limit + 1)
        finally:
            reply.close()
            reply.release_conn()
        return data if len(data) <= limit else None

    def write(self, name: str, data: bytes, content_type: str) -> None:
        final = self.base + name
        temporary = f"{self.base}.{name}.tmp-{os.urandom(4).hex()}"
        self.client.put_object(
            self.bucket, temporary, io.BytesIO(data), len(data), content_type=content_type, metadata=_CACHE_CONTROL
        )
        try:
            # A server-side copy replaces the object in one step; its content type and headers come along.
            self.client.copy_object(self.bucket, final, CopySource(self.bucket, temporary))
        finally:
            with contextlib.suppress(Exception):  # a leftover is swept by a later run
                self.client.remove_object(self.bucket, temporary)

    def sweep(self) -> None:
        for key in self.leftovers:
            with contextlib.suppress(Exception):
                self.client.remove_object(self.bucket, key)
