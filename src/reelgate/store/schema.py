"""Table definitions. Times are UNIX seconds (float) so SQLite and PostgreSQL
compare them the same way and no time zone can be lost on the way."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The token's own limits (`TokenLimits`); null: the server's settings."""


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    video_id: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    origin: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    enhanced_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    enhance: Mapped[bool] = mapped_column(Boolean, default=False)
    """The client asked for enhancement: a worker writes `enhanced_prompt` once."""
    start_image: Mapped[str | None] = mapped_column(Text, nullable=True)
    end_image: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_video_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    end_source_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    loop: Mapped[bool] = mapped_column(Boolean, default=False)
    concepts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    negative_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    refs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """Reference images of an image generation: [{role, url, weight}]."""
    image_format: Mapped[str | None] = mapped_column(String(8), nullable=True)
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    aspect_ratio: Mapped[str] = mapped_column(String(8))
    resolution: Mapped[str] = mapped_column(String(8))
    duration: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_dialect: Mapped[str | None] = mapped_column(String(32), nullable=True)
    callback_on_start: Mapped[bool] = mapped_column(Boolean, default=False)
    origin_request: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[float] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When retention deleted the task's files (the row stays, to say so)."""
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When a client deleted it unfinished: hidden from then on, removed by the
    janitor once its cancel callback has had its time."""
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Upstream engines: the generation this task follows, the key (its
    # fingerprint, never the secret) that made it, and the last callback nudge.
    upstream_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upstream_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    upstream_submitted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    upstream_nudged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    upstream_unclear_creates: Mapped[int] = mapped_column(Integer, default=0)
    """Creates that failed in a way the upstream may still have acted on."""
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Its token's queue priority when it was created (higher is claimed
    sooner; `store/tasks.py` `claim_order` ages it)."""

    __table_args__ = (
        Index("ix_tasks_upstream_key", "upstream_key", "state"),
        Index("ix_tasks_queue", "state", "not_before", "created_at"),
        Index("ix_tasks_owner_created", "owner_id", "created_at"),
        Index("ix_tasks_owner_state", "owner_id", "state"),
        Index("ix_tasks_finished", "finished_at"),
        Index("ix_tasks_expirable", "expired_at", "finished_at"),
    )


class UploadRow(Base):
    """An image a token uploaded: counted against its quota and rate limit,
    removed (file and row) once it expires."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_uploads_owner_created", "owner_id", "created_at"),
        Index("ix_uploads_expires", "expires_at"),
        Index("ix_uploads_key", "key"),
    )


class CallbackRow(Base):
    """The webhook outbox: written in the same transaction that finishes a
    task, so a callback can never be lost between "done" and "sent"."""

    __tablename__ = "callbacks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """The URL's host, on which a dispatcher counts its share of deliveries."""
    dialect: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_callbacks_due", "state", "next_attempt_at"),)


class UpstreamKeyRow(Base):
    """What reelgate knows about one upstream API key, by fingerprint: whether
    it is set aside (and why, and until when) and how often it failed in a row."""

    __tablename__ = "upstream_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(32))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    set_aside_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    """None: in use; a time: resting until then; infinity is stored as -1 (for good)."""
    set_aside_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class UpstreamSubmitRow(Base):
    """One create sent upstream with a key, for the per-key creates-per-minute limit."""

    __tablename__ = "upstream_submits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_upstream_submits_key_at", "key_id", "at"),)


class WorkerRow(Base):
    """A process running workers, as its heartbeat last said (`store/workers.py`):
    what `/readyz` reads to know each engine has a worker alive somewhere."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    engines: Mapped[list[str]] = mapped_column(JSON)
    slots: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, index=True)
