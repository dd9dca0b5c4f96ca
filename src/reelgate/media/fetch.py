"""The one guarded client for every user-supplied URL (inputs and callbacks).

It allows http(s) and data URIs only. It resolves the host name itself and
refuses loopback, private, link-local, multicast and reserved addresses
(unless the deployment allows private networks) and cloud metadata addresses
(always); then it connects to the very address it checked, sending the
original Host header and TLS server name, so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect it. Every
redirect is checked the same way, and size, time and redirects are capped.

Time is capped in total, not per read: a fetch gets `timeout` for name
resolution, every redirect, the headers and the body together, and a callback
gets `callback_timeout` to be resolved, connected, sent and answered. A server
that drips one byte at a time cannot hold a worker (or the dispatcher) longer.
Requests run on an httpx.AsyncClient under `asyncio.timeout`, which cancels the
request wherever it is; the synchronous `fetch` runs one in a private loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes, urljoin, urlsplit, urlunsplit

import httpx

from reelgate import __version__
from reelgate.domain.errors import InvalidInput

USER_AGENT = f"reelgate/{__version__}"

T = TypeVar("T")


class FetchError(InvalidInput):
    """A URL could not be fetched; the message is safe to show the client."""


@dataclass(frozen=True)
class FetchLimits:
    """What the guarded client may do; built from the settings by the caller."""

    allow_private_networks: bool = False
    timeout: float = 30.0
    max_bytes: int = 200 * 1024 * 1024
    max_redirects: int = 5
    callback_timeout: float = 10.0


METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> IP addresses."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _plain_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def is_public_address(address: str) -> bool:
    ip = _plain_ip(address)
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Target:
    """Where a checked request really goes: the pinned URL plus the headers
    and TLS name of the host the user named."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe Base64, padding optional, whitespace ignored;
    anything else is an error rather than silently skipped."""
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    if "-" in compact or "_" in compact:
        return base64.urlsafe_b64decode(compact.encode("ascii"))
    return base64.b64decode(compact, validate=True)


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise FetchError("malformed data URI")
    if len(payload) > max_bytes * 4 // 3 + 8:
        raise FetchError(f"data URI is larger than {max_bytes} bytes")
    try:
        data = _b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise FetchError("data URI is not valid Base64") from exc
    if len(data) > max_bytes:
        raise FetchError(f"data URI is larger than {max_bytes} bytes")
    return data


class GuardedClient:
    def __init__(self, limits: FetchLimits, resolver: Resolver = system_resolver) -> None:
        self.limits = limits
        self.resolver = resolver
        # Made once: loading the CA bundle is the slow part of a new client.
        self._ssl = httpx.create_ssl_context()

    def close(self) -> None:
        """Nothing to release: each fetch, and the dispatcher, owns its httpx client."""

    def async_http(self) -> httpx.AsyncClient:
        """A client for the running event loop, for `post_async` (the caller closes it).

        httpx's own timeout is only a backstop: the deadlines here are total."""
        return httpx.AsyncClient(
            follow_redirects=False,
            timeout=max(self.limits.timeout, self.limits.callback_timeout) + 5,
            headers={"user-agent": USER_AGENT},
            verify=self._ssl,
        )

    def target(self, url: str) -> Target:
        """Check a URL and pin it to the address that passed; FetchError if none may."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"only http and https URLs can be fetched, not {url[:80]!r}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise FetchError(f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise FetchError(f"cannot resolve host {host!r}")
        for address in addresses:
            if _plain_ip(address) in METADATA_ADDRESSES:
                raise FetchError(f"host {host!r} is a cloud metadata address")
            if not self.limits.allow_private_networks and not is_public_address(address):
                raise FetchError(f"host {host!r} resolves to a non-public address")
        ip = ipaddress.ip_address(addresses[0].split("%")[0])
        netloc = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return Target(pinned, {"host": host_header}, extensions)

    async def _target(self, url: str) -> Target:
        """`target` in a thread of its own, so that the name lookup counts
        against the deadline: a lookup cannot be cancelled, and one that hangs
        past the deadline keeps only its own thread (not a shared pool that a
        few hostile names could fill)."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[Target] = loop.create_future()

        def settle(result: Target | BaseException) -> None:
            if found.done():
                return
            if isinstance(result, BaseException):
                found.set_exception(result)
            else:
                found.set_result(result)

        def look_up() -> None:
            result: Target | BaseException
            try:
                result = self.target(url)
            except Exception as exc:
                result = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(settle, result)

        threading.Thread(target=look_up, name="resolve", daemon=True).start()
        return await found

    def fetch(self, url: str, max_bytes: int | None = None) -> bytes:
        """The body of a URL or data URI, at most `max_bytes`, within `timeout`
        in all. Blocks; call it from a thread without a running event loop."""
        limit = max_bytes or self.limits.max_bytes
        if url.startswith("data:"):
            return decode_data_uri(url, limit)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._fetch_within(url, limit))
        # Called from async code by mistake: block only a helper thread's loop.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(self._fetch_within(url, limit))).result()

    async def _fetch_within(self, url: str, limit: int) -> bytes:
        async with self.async_http() as http:
            return await _within(
                self.limits.timeout,
                self._fetch(http, url, limit),
                f"fetching {url[:200]} took longer than {self.limits.timeout:g} s",
            )

    async def _fetch(self, http: httpx.AsyncClient, url: str, limit: int) -> bytes:
        response_url = url
        for _ in range(self.limits.max_redirects + 1):
            target = await self._target(response_url)
            try:
                async with http.stream(
                    "GET", target.url, headers=target.headers, extensions=target.extensions
                ) as response:
                    if response.is_redirect:
                        response_url = urljoin(response_url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"{url[:200]} answered HTTP {response.status_code}")
                    return await self._read_capped(response, limit, url)
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot fetch {url[:200]}: {exc.__class__.__name__}") from exc
        raise FetchError(f"{url[:200]} redirected more than {self.limits.max_redirects} times")

    @staticmethod
    async def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url[:200]} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise FetchError(f"{url[:200]} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def post_async(
        self, http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
    ) -> int:
        """POST a callback with a client from `async_http`; returns the HTTP
        status. Redirects are not followed and the answer's body is not read.
        FetchError when the receiver has not answered within `callback_timeout`."""
        timeout = self.limits.callback_timeout
        return await _within(
            timeout,
            self._post(http, url, body, headers),
            f"the receiver did not answer within {timeout:g} s",
        )

    async def _post(
        self, http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
    ) -> int:
        target = await self._target(url)
        request = http.build_request(
            "POST",
            target.url,
            content=body,
            headers={**headers, **target.headers},
            extensions=target.extensions,
        )
        response = await http.send(request, stream=True)
        await response.aclose()
        return response.status_code


async def _within(seconds: float, work: Coroutine[Any, Any, T], message: str) -> T:
    """`work`, cancelled after `seconds` in all; FetchError(message) then."""
    try:
        async with asyncio.timeout(seconds) as deadline:
            return await work
    except TimeoutError:
        if deadline.expired():
            raise FetchError(message) from None
        raise
