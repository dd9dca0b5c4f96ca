"""API tokens. Only a SHA-256 of each token is stored: tokens are 256-bit
random strings, so a fast hash is enough and lookups stay an index probe."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.engine import CursorResult

from reelgate.domain.types import TokenInfo, TokenLimits
from reelgate.store.db import Database
from reelgate.store.schema import TokenRow

TOKEN_PREFIX = "rg_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.name,
        row.prefix,
        row.created_at,
        row.revoked_at,
        TokenLimits.from_dict(row.limits),
    )


def _named(id_or_name: str) -> ColumnElement[bool]:
    """A token by id, name or printed prefix (a name may match several)."""
    return (
        (TokenRow.id == id_or_name)
        | (TokenRow.name == id_or_name)
        | (TokenRow.prefix == id_or_name)
    )


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str) -> tuple[TokenInfo, str]:
        """Returns the token's record and the secret, which is never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            id=str(uuid.uuid4()),
            name=name,
            token_hash=hash_token(secret),
            prefix=secret[:10],
            created_at=time.time(),
        )
        with self.db.write() as s:
            s.add(row)
        return _info(row), secret

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The active token for a secret, or None. Lookup is by SHA-256 of the
        secret, so index timing reveals nothing about the secret itself, and the
        final comparison is constant-time."""
        digest = hash_token(secret)
        with self.db.read() as s:
            row = s.scalar(select(TokenRow).where(TokenRow.token_hash == digest))
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        return None if row.revoked_at is not None else _info(row)

    def is_live(self, token_id: str) -> bool:
        """Whether the token exists and is not revoked (an index probe)."""
        with self.db.read() as s:
            found = s.execute(select(TokenRow.revoked_at).where(TokenRow.id == token_id)).first()
        return found is not None and found[0] is None

    def list(self) -> list[TokenInfo]:
        with self.db.read() as s:
            return [_info(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.created_at))]

    def count_active(self) -> int:
        with self.db.read() as s:
            return (
                s.scalar(
                    select(func.count()).select_from(TokenRow).where(TokenRow.revoked_at.is_(None))
                )
                or 0
            )

    def find(self, id_or_name: str) -> builtins.list[TokenInfo]:
        """The tokens an id, name or printed prefix names, oldest first."""
        query = select(TokenRow).where(_named(id_or_name)).order_by(TokenRow.created_at)
        with self.db.read() as s:
            return [_info(r) for r in s.scalars(query)]

    def set_limits(self, token_id: str, limits: TokenLimits) -> TokenInfo | None:
        """Replace a token's own limits (all unset: the server's settings
        again); they apply to its next create. None: no such token."""
        with self.db.write() as s:
            row = s.get(TokenRow, token_id, with_for_update=True)
            if row is None:
                return None
            row.limits = limits.to_dict()
            s.flush()
            return _info(row)

    def revoke(self, id_or_name: str) -> int:
        """Revoke by id, name or printed prefix; returns how many were revoked."""
        with self.db.write() as s:
            result = s.execute(
                update(TokenRow)
                .where(_named(id_or_name))
                .where(TokenRow.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            # an UPDATE's result is a CursorResult; Session.execute is typed as Result
            return cast("CursorResult[Any]", result).rowcount
