"""The one guarded client for every user-supplied URL (inputs and callbacks).

It allows http(s) and data URIs only, resolves the host name and refuses
private, loopback, link-local, multicast and reserved addresses unless the
deployment allows private networks, re-checks after every redirect, and caps
size, time and redirects.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import httpx

from reelgate import __version__
from reelgate.config import Settings

USER_AGENT = f"reelgate/{__version__}"


class FetchError(Exception):
    """A URL could not be fetched; the message is safe to show the client."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise FetchError("malformed data URI")
    if len(payload) > max_bytes * 4 // 3 + 8:
        raise FetchError(f"data URI is larger than {max_bytes} bytes")
    try:
        if header.endswith(";base64"):
            data = base64.b64decode(payload, validate=False)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise FetchError("data URI is not valid Base64") from exc
    if len(data) > max_bytes:
        raise FetchError(f"data URI is larger than {max_bytes} bytes")
    return data


class GuardedClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = httpx.Client(
            follow_redirects=False,
            timeout=settings.fetch_timeout,
            headers={"user-agent": USER_AGENT},
        )

    def close(self) -> None:
        self._client.close()

    def check_url(self, url: str) -> None:
        """Raise FetchError unless the URL may be contacted."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"only http and https URLs can be fetched, not {url[:80]!r}")
        if self.settings.allow_private_networks:
            return
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"cannot resolve host {parts.hostname!r}") from exc
        for info in infos:
            if not _is_public(str(info[4][0])):
                raise FetchError(f"host {parts.hostname!r} resolves to a non-public address")

    def fetch(self, url: str, max_bytes: int | None = None) -> bytes:
        """The body of a URL or data URI, at most `max_bytes`."""
        limit = max_bytes or self.settings.fetch_max_bytes
        if url.startswith("data:"):
            return decode_data_uri(url, limit)
        response_url = url
        for _ in range(self.settings.fetch_max_redirects + 1):
            self.check_url(response_url)
            try:
                with self._client.stream("GET", response_url) as response:
                    if response.is_redirect:
                        response_url = urljoin(response_url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"{url[:200]} answered HTTP {response.status_code}")
                    return self._read_capped(response, limit, url)
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot fetch {url[:200]}: {exc.__class__.__name__}") from exc
        raise FetchError(f"{url[:200]} redirected more than {self.settings.fetch_max_redirects} times")

    @staticmethod
    def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url[:200]} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                raise FetchError(f"{url[:200]} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST a callback; returns the HTTP status. Redirects are not followed."""
        self.check_url(url)
        response = self._client.post(
            url, content=body, headers=headers, timeout=self.settings.callback_timeout
        )
        return response.status_code
