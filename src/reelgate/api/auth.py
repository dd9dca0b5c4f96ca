"""Bearer-token authentication, with revocation honoured at once.

A token's secret is checked by its SHA-256 against the `tokens` table. Two
dependencies, one rule: no request of a revoked token is served, not even
one right after its last use, in this process or another (`reelgate tokens
revoke` runs in a process of its own).

- `Authenticator.__call__` (`Depends(ctx.auth)`) reads the token's row on
  every request: one indexed query, so a revoked token is refused here.
- `Authenticator.caller` (`Depends(ctx.auth.caller)`) is for the routes
  that read the token's row in their own query anyway: a retrieve and a get
  (`TaskService.get`, `get_with_deliveries`: the task is read joined to its
  owner's row) and a create (`TaskService.create`: the limits are read with
  the owner's row). It remembers for a few seconds which token a verified
  secret belongs to (the secret -> token mapping never changes), so a cache
  hit costs no query and no thread; whether the token is still live is
  checked by that route's one query, which refuses a revoked token with the
  same 401. A route that makes no such query must not use it.
"""

from __future__ import annotations

import threading
import time

from anyio.to_thread import run_sync
from fastapi import Request

from reelgate import logs
from reelgate.domain.errors import INVALID_TOKEN, Unauthorized
from reelgate.domain.types import TokenInfo
from reelgate.store.tokens import TokenStore, hash_token

CACHE_SECONDS = 5.0
"""How long `caller` remembers a verified secret's token (its name and own
limits may be that old; whether it is revoked never is)."""
CACHE_SIZE = 10_000


def _secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return secret


class Authenticator:
    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, TokenInfo]] = {}

    async def __call__(self, request: Request) -> TokenInfo:
        """A FastAPI dependency: the live token, read from the database now."""
        return await run_sync(self._verify, _secret(request))

    async def caller(self, request: Request) -> TokenInfo:
        """A FastAPI dependency for routes whose own query checks that the
        token is live (see the module's docstring)."""
        key = hash_token(_secret(request))
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            logs.note(token=cached[1].name)  # the name, for the request's log lines
            return cached[1]
        return await run_sync(self._verify, _secret(request))

    def confirm(self, owner: TokenInfo) -> None:
        """Refuse a token `caller` handed over that has been revoked since
        (for a route that turns out to make no query of its own)."""
        if not self.tokens.is_live(owner.id):
            raise Unauthorized(INVALID_TOKEN)

    def _verify(self, secret: str) -> TokenInfo:
        info = self.tokens.authenticate(secret)
        if info is None:
            raise Unauthorized(INVALID_TOKEN)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[hash_token(secret)] = (time.monotonic() + CACHE_SECONDS, info)
        logs.note(token=info.name)
        return info
