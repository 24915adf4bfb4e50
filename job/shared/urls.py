"""URL hygiene shared by what reads URLs from feeds (job/news/) and what publishes them (job/publish/)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_userinfo(url: str) -> str:
    """`url` without the user:password some feed URLs carry (https://user:pass@host/feed)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
