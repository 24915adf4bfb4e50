"""Outbound HTTP to addresses from outside input (feed URLs, webhook URLs): the address guard and a pinned
transport. Shared by the job and the controller, which is why it lives beside the spec types that both images
carry.

- `AddressPolicy.refusal` says why an address must not be reached: loopback, link-local and the cloud metadata
  service, private, shared and reserved ranges, also when written as IPv6 (mapped, 6to4, NAT64), unless allowed.
- `resolve` looks a host up once and checks every address; `PinnedAdapter` then connects to that checked address
  whatever the name resolves to by now (no DNS rebinding), while Host, SNI and certificate checks use the name.
- `Deadline` bounds a whole exchange in wall-clock time by shutting its sockets down.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class GuardError(Exception):
    """A host that may not, or cannot, be reached; the message says which and why."""


class AddressRefused(GuardError):
    """The host is, or resolves to, an address the policy refuses."""


class Unresolvable(GuardError):
    """The host name does not resolve."""


class Deadline:
    """The wall-clock budget of one download. When it runs out, every socket the download opened is shut
    down, so a read blocked in any phase (status line, headers, chunk sizes, body) returns at once.

    Known gap: a socket is watched from the end of its connect() on, so for https a TLS handshake dripped
    byte by byte is bounded only per read (connect_timeout), not by this deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._end

    @property
    def remaining(self) -> float:
        return max(0.001, self._end - time.monotonic())

    @property
    def message(self) -> str:
        return f"the download took longer than {self.seconds:g} s in all (a server that is too slow)"

    def watch(self, sock: object) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self._fired
        if fired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: its own would tear down TLS state under the
    # reading thread; at the socket level the blocked read simply sees the end of the stream.
    with suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _DeadlineWatch:
    """Mixin for urllib3 connections: once connected, the download's deadline can shut the socket down."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._deadline.watch(self.sock)  # type: ignore[attr-defined]


class _WatchedConnection(_DeadlineWatch, HTTPConnection):
    """An HTTP connection whose socket the download's deadline can shut down."""


class _WatchedTLSConnection(_DeadlineWatch, HTTPSConnection):
    """An HTTPS connection whose socket the download's deadline can shut down."""


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


class PinnedAdapter(HTTPAdapter):
    """A transport adapter that connects to one address the guard has checked, whatever the URL's host
    resolves to by now (no DNS rebinding), while the Host header (set by the caller), SNI and certificate
    verification still use the URL's host name."""

    def __init__(self, address: str, deadline: Deadline) -> None:
        super().__init__(max_retries=0)
        self._address = address
        self._deadline = deadline
        self._pools: list[HTTPConnectionPool] = []

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: str | tuple[str, str] | None = None,
    ) -> HTTPConnectionPool:
        host_params, tls = self.build_connection_pool_key_attributes(request, True if verify is None else verify, cert)
        pool: HTTPConnectionPool
        if host_params["scheme"] == "https":
            pool = _PinnedHTTPSPool(
                self._address, host_params["port"], server_hostname=host_params["host"], deadline=self._deadline, **tls
            )
        else:
            pool = _PinnedHTTPPool(self._address, host_params["port"], deadline=self._deadline)
        self._pools.append(pool)
        return pool

    def close(self) -> None:
        super().close()
        for pool in self._pools:
            pool.close()


# -- the address guard -----------------------------------------------------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool
    networks: tuple[_IPNetwork, ...]

    @classmethod
    def of(cls, allow_private: bool, networks: Sequence[str]) -> AddressPolicy:
        parsed = []
        for network in networks:
            try:
                parsed.append(ipaddress.ip_network(network, strict=False))
            except ValueError:
                raise ValueError(f"{network!r} is not a network in CIDR form such as 10.1.2.0/24") from None
        return cls(allow_private, tuple(parsed))

    def refusal(self, address: str) -> str | None:
        """Why a feed may not be fetched from `address`, or None when it may."""
        if self.allow_private:
            return None
        ip = ipaddress.ip_address(address)
        embedded = _embedded_ipv4(ip)
        if any(form in network for form in (ip, *embedded) for network in self.networks):
            return None
        # The IPv4 address an IPv6 form leads to says more than the IPv6 range it is written in.
        for form in embedded:
            kind = _non_public_kind(form)
            if kind:
                return f"{kind} ({form} written as IPv6)"
        return _non_public_kind(ip)


def is_metadata(address: str) -> bool:
    """Whether `address` is the cloud metadata service's (in any of its IPv6 forms too)."""
    ip = ipaddress.ip_address(address)
    return any(form in _METADATA for form in (ip, *_embedded_ipv4(ip)))


def _embedded_ipv4(ip: _IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, 6to4 and NAT64 forms."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [form for form in (ip.ipv4_mapped, ip.sixtofour) if form is not None]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _non_public_kind(ip: _IPAddress) -> str | None:
    if ip in _METADATA:
        return "the cloud metadata service address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared (carrier-grade NAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((kind for matched, kind in checks if matched), None)


def resolve(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """The host's addresses, resolved once; all must pass the guard (a name that also points inside is
    refused as a whole)."""
    try:
        literal: _IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise Unresolvable(f"could not resolve {host}: {exc.strerror}") from None
        except (OSError, UnicodeError):
            raise Unresolvable(f"could not resolve {host}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        refusal = policy.refusal(address)
        if refusal:
            named = f"{address} is" if literal is not None else f"{host} resolves to {address},"
            raise AddressRefused(f"refused: {named} {refusal}")
    return addresses
