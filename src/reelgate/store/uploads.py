"""Uploaded images: who owns them, how large they are, when they expire."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select

from reelgate.domain.types import TokenUsage
from reelgate.store.db import Database
from reelgate.store.schema import UploadRow
from reelgate.store.usage import Window, locked_usage


class UploadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        upload_id: str,
        owner_id: str,
        key: str,
        size: int,
        lifetime: float,
        admit: Callable[[TokenUsage], None],
        window: Window,
    ) -> None:
        """Record an upload once `admit` (shown the owner's usage under the
        owner's lock, with the recent creates `window` asks for) lets it in;
        it raises to refuse."""
        with self.db.write() as s:
            now = time.time()
            admit(locked_usage(s, owner_id, now, window))
            s.add(
                UploadRow(
                    id=upload_id,
                    owner_id=owner_id,
                    key=key,
                    size=size,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )

    def usage(self, owner_id: str, window: Window) -> TokenUsage:
        """A token's usage now, unlocked: a first check before a fetch."""
        with self.db.read() as s:
            return locked_usage(s, owner_id, time.time(), window, lock=False)

    def owner(self, key: str) -> str | None:
        """The token that owns the upload stored under `key`, while it lasts
        (None: no such upload, or it has expired). Who may use an upload is
        decided by comparing this with a task's or a request's owner."""
        with self.db.read() as s:
            return s.scalar(
                select(UploadRow.owner_id).where(
                    UploadRow.key == key, UploadRow.expires_at > time.time()
                )
            )

    def expired(self, now: float, limit: int = 500) -> list[tuple[str, str]]:
        """(id, storage key) of uploads past their lifetime, oldest first."""
        with self.db.read() as s:
            rows = s.execute(
                select(UploadRow.id, UploadRow.key)
                .where(UploadRow.expires_at <= now)
                .order_by(UploadRow.expires_at)
                .limit(limit)
            ).all()
            return [(r[0], r[1]) for r in rows]

    def forget(self, upload_ids: list[str]) -> None:
        with self.db.write() as s:
            s.execute(delete(UploadRow).where(UploadRow.id.in_(upload_ids)))
