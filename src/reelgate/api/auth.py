"""Bearer-token authentication.

Verified tokens are cached for a few seconds so a burst of polls does not
cost a database read each; a revoked token stops working within that time.
"""

from __future__ import annotations

import time

from fastapi import Request

from reelgate import logs
from reelgate.domain.errors import Unauthorized
from reelgate.domain.types import TokenInfo
from reelgate.store.tokens import TokenStore, hash_token

CACHE_SECONDS = 5.0


class Authenticator:
    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens
        self._cache: dict[str, tuple[float, TokenInfo]] = {}

    def __call__(self, request: Request) -> TokenInfo:
        """A FastAPI dependency (sync, so it runs in the thread pool)."""
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        key = hash_token(secret)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached and cached[0] > now:
            logs.note(token=cached[1].name)  # the name, for the request's log lines
            return cached[1]
        info = self.tokens.authenticate(secret)
        if info is None:
            raise Unauthorized("invalid or revoked token")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + CACHE_SECONDS, info)
        logs.note(token=info.name)
        return info
