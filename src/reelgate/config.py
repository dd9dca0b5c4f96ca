"""One settings object for the whole server.

Values come from (highest first) explicit overrides (CLI options), `REELGATE_*`
environment variables, a TOML file (`REELGATE_CONFIG`, else `reelgate.toml`
in the working directory when present), then the defaults below. Nothing else
in the project reads the environment.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from reelgate.domain.models import ASPECT_RATIOS, DURATIONS, RESOLUTIONS
from reelgate.media.fetch import FetchLimits

_CHOICES: dict[str, Collection[str]] = {
    "default_aspect_ratio": ASPECT_RATIOS,
    "default_resolution": RESOLUTIONS,
    "default_duration": DURATIONS,
}


def _toml_path() -> Path | None:
    explicit = os.environ.get("REELGATE_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path("reelgate.toml")
    return default if default.exists() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="ignore")

    # Server
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("reelgate-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the data directory"
    )
    database_pool_size: int = Field(
        default=40,
        ge=1,
        le=1000,
        description="Database connections a process keeps open for reuse (as many as the "
        "API's request threads by default, so a busy API does not open and close connections "
        "per request; PostgreSQL: mind max_connections across processes)",
    )
    public_base_url: str | None = Field(
        default=None, description="Base of every asset URL in answers (https behind a proxy)"
    )
    workers: int = Field(default=1, ge=0, description="In-process workers started by `serve`")
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="json: one JSON object per line, with the request id, task id and "
        "token name when known (docs/operations.md)",
    )

    # Operations: metrics and readiness (docs/operations.md)
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Turns /metrics on; a scrape sends it as a bearer token (API tokens "
        "do not open it)",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="prometheus-client's multiprocess directory, shared by this host's "
        "processes (default: <data_dir>/metrics/<host name>)",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`reelgate worker` serves /metrics on this port (at REELGATE_HOST)",
    )
    ready_heartbeat_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/readyz wants, for each engine, a worker whose heartbeat is this recent",
    )

    # Queue
    lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A worker renews its task's lease at least every second; one that stops "
        "renewing is presumed dead this long after, and an idle worker takes its task over",
    )
    max_attempts: int = Field(default=3, ge=1)
    poll_interval: float = Field(default=0.5, gt=0)
    notify_poll_interval: float = Field(
        default=5.0,
        gt=0,
        description="On PostgreSQL, while notifications arrive (LISTEN/NOTIFY), idle "
        "workers and sync waits look at the database this often instead of poll_interval",
    )
    retry_backoff_seconds: float = Field(default=2.0, ge=0)

    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0, description="Request body cap")

    # LTX-Video engine (pip install 'reelgate[ltx]')
    ltx_weights: str | None = Field(
        default=None,
        description="LTX-Video checkpoint: a diffusers folder, a single .safetensors file or a "
        "cached repo id; enables `ltx`",
    )
    ltx_config: str | None = Field(
        default=None,
        description="For a single-file checkpoint: the diffusers LTX-Video folder (or cached repo "
        "id) giving its configs, T5 text encoder and tokenizer",
    )
    ltx_model_weights: dict[str, str] = Field(
        default_factory=dict,
        description='Per model, its own checkpoint: {"ray-flash-2": "/models/ltxv-distilled"}',
    )
    ltx_distilled: bool | None = Field(
        default=None, description="Whether the checkpoints are distilled (default: from the name)"
    )
    ltx_device: str = Field(default="auto", description="auto, cuda, cuda:1, cpu")
    ltx_dtype: str = Field(
        default="auto", description="auto (bf16 on GPU), bfloat16, float16, float32"
    )
    ltx_cpu_offload: bool = Field(default=False, description="Same as ltx_offload=model")
    ltx_offload: Literal["none", "model", "group"] = Field(
        default="none",
        description="GPU memory: model (whole models moved in turn), group (layers streamed)",
    )
    ltx_fp8: bool = Field(
        default=False, description="Store the transformer's weights as float8 (half the memory)"
    )
    ltx_vae_tiling: bool = Field(default=True, description="Decode the video in tiles")
    ltx_max_pixel_frames: int = Field(
        default=1920 * 1088 * 137,
        ge=0,
        description="Largest width x height x frames one render may take (0: no limit)",
    )
    ltx_image_crf: int = Field(
        default=29, ge=0, le=51, description="H.264 CRF round trip of conditioning images (0: off)"
    )
    ltx_extend_frames: int = Field(
        default=9, ge=1, description="Source frames an extension is conditioned on (8k+1)"
    )
    ltx_upsampler: str | None = Field(
        default=None,
        description="LTX-Video's latent upsampler: a local diffusers folder (or cached repo id); "
        "enables upscales and multi-scale renders on `ltx`",
    )
    ltx_compile: bool = Field(
        default=False,
        description="torch.compile the transformer's repeated blocks (first render per size "
        "compiles)",
    )
    ltx_cache_threshold: float = Field(
        default=0.0,
        ge=0,
        description="diffusers' first-block cache threshold (0: off; 0.05 typical): skips "
        "most of the transformer on steps that change little",
    )
    ltx_profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per model, over its checkpoint\'s recipe: {"ray-2": {"steps": 40}}',
    )

    # Luma upstream engine (the official Dream Machine API, or another reelgate)
    luma_base_url: str = Field(
        default="https://api.lumalabs.ai/dream-machine/v1",
        description="Dream Machine API base; another reelgate's /dream-machine/v1 works too",
    )
    luma_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Upstream API keys (comma-separated or a JSON list); enables the `luma` engine",
    )
    luma_model: str = Field(
        default="ray-2",
        description="Upstream model for requests that "
        'name none the upstream knows (e.g. AceData\'s "luma")',
    )
    luma_max_concurrent_per_key: int = Field(
        default=10, ge=1, description="Generations in flight per key (Build tier: 10)"
    )
    luma_creates_per_minute_per_key: int = Field(
        default=20, ge=1, description="Creates per key per minute (Build tier: 20)"
    )
    luma_key_failure_limit: int = Field(
        default=5, ge=1, description="Failures in a row before a key is set aside for a while"
    )
    luma_key_cooldown_seconds: float = Field(default=300.0, ge=0)
    luma_poll_seconds: float = Field(default=2.0, gt=0, description="First poll delay; grows")
    luma_poll_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest poll delay; with callbacks, the safety poll"
    )
    luma_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="Give up (and cancel upstream) after this long"
    )
    luma_request_timeout: float = Field(default=60.0, gt=0, description="Per upstream request")
    upstream_workers: int = Field(
        default=16,
        ge=1,
        description="Upstream generations followed at once per process "
        "(threads that mostly wait), besides the render workers",
    )

    # Per-token limits (0 turns a limit off)
    rate_limit_per_minute: int = Field(default=60, ge=0, description="Creates per token per minute")
    max_active_tasks: int = Field(default=16, ge=0, description="Queued + running tasks per token")
    tasks_per_day: int = Field(
        default=0, ge=0, description="Tasks a token may create in any 24 hours (0: no limit)"
    )
    priority_aging_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A waiting task gains one priority level per this many seconds waited, "
        "so a low-priority token's task is never passed over forever",
    )
    upload_quota_bytes: int = Field(
        default=1024**3, ge=0, description="Bytes of unexpired uploads a token may keep"
    )
    upload_lifetime_seconds: float = Field(
        default=7 * 86_400.0, gt=0, description="Uploads are removed this long after they arrive"
    )

    # Generation defaults
    default_engine: str = "preview"
    model_engines: dict[str, str] = Field(
        default_factory=dict, description='Requested model name -> engine, e.g. {"ray-2": "ltx"}'
    )
    default_aspect_ratio: str = "16:9"
    default_resolution: str = "720p"
    default_duration: str = "5s"
    enhancer: str = Field(default="detail", description="detail | none | openai | module:attribute")
    enhancer_base_url: str | None = Field(
        default=None,
        description="openai enhancer: the chat-completions API up to and including /v1",
    )
    enhancer_model: str | None = Field(default=None, description="openai enhancer: the model")
    enhancer_api_key: SecretStr | None = Field(
        default=None, description="openai enhancer: bearer key (none for a local server)"
    )
    enhancer_timeout: float = Field(
        default=20.0, gt=0, le=600, description="openai enhancer: seconds for one answer"
    )
    encoder_preset: str = "veryfast"
    encoder_crf: int = Field(default=20, ge=0, le=51)
    encoder_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        description="x264 threads per encode; 0: x264's own choice (1.5 per core)",
    )
    opencv_threads: int = Field(
        default=1,
        ge=0,
        le=64,
        description="OpenCV threads in a process that runs workers; 0: OpenCV's own "
        "choice (one per core). Encoders and other workers already keep the cores busy, "
        "and OpenCV's pool spins while it waits (docs/performance.md)",
    )

    # Generations dialect
    generations_response: Literal["plain", "wrapped"] = Field(
        default="plain", description="Create answers: web-style object, or {code, data} envelope"
    )

    # Official dialect
    credit_balance: float = Field(
        default=1_000_000.0, description="What GET /credits reports; reelgate does not meter"
    )

    # Sync waiting
    max_wait_seconds: float = Field(default=900.0, gt=0)

    # Asset links
    asset_url_ttl_seconds: int = Field(
        default=0,
        ge=0,
        description="0: unguessable permanent links; >0: signed links that "
        "expire after this many seconds",
    )

    # Where assets live
    storage_url: str | None = Field(
        default=None,
        description="file:///path (default: the data directory's assets/) or "
        "s3://bucket/prefix for an S3-compatible store shared by every process",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="The store's S3 endpoint, for anything but AWS S3"
    )
    s3_public_base_url: str | None = Field(
        default=None,
        description="Public URL of the bucket (or a CDN in front of it) to link to "
        "instead of presigned links, for links that do not expire",
    )
    asset_links: Literal["direct", "proxy"] = Field(
        default="direct",
        description="With S3: direct links to the bucket (presigned, or under "
        "s3_public_base_url), or links through the API's /assets/ route",
    )
    s3_timeout: float = Field(default=60.0, gt=0, description="Per request to the store")
    asset_retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Delete a finished task's files this many days after it "
        "finished, and uploads once they expire (0: keep them)",
    )
    gc_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often `serve` removes expired files"
    )

    input_link_ttl_seconds: int = Field(
        default=3600,
        gt=0,
        description="How long a link handed to an upstream engine for a user's input "
        "image lives (made afresh for every upstream create)",
    )

    # Fetching user URLs
    allow_private_networks: bool = False
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0)
    image_max_pixels: int = Field(default=40_000_000, gt=0)
    source_max_seconds: float = Field(default=120.0, gt=0, description="Longest video to extend")
    source_max_pixels: int = Field(default=3840 * 2160, gt=0, description="Largest video frame")

    # Callbacks
    callback_timeout: float = Field(default=10.0, gt=0)
    callback_concurrency: int = Field(default=8, gt=0, description="Deliveries in flight at once")
    callback_max_per_host: int = Field(
        default=2, gt=0, description="Deliveries in flight to one receiving host"
    )
    callback_max_per_token: int = Field(
        default=2, gt=0, description="Deliveries in flight for one token's tasks"
    )
    callback_window_seconds: float = Field(
        default=86_400.0, gt=0, description="How long an undelivered callback keeps being retried"
    )
    callback_backoff_seconds: float = Field(default=2.0, ge=0)
    callback_max_backoff_seconds: float = Field(default=600.0, gt=0)
    webhook_secret: str | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_...); generated and kept in "
        "the data directory when unset",
    )

    # CLI client (`reelgate generate`)
    server_url: str | None = None
    token: str | None = None

    @field_validator("default_aspect_ratio", "default_resolution", "default_duration")
    @classmethod
    def _known_choice(cls, v: str, info: ValidationInfo) -> str:
        allowed = _CHOICES[info.field_name or ""]
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return v

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("file://", "s3://")):
            raise ValueError("must be file:///path or s3://bucket/prefix")
        if v and v.startswith("s3://") and not v[5:].split("/")[0]:
            raise ValueError("an S3 storage URL names a bucket: s3://bucket/prefix")
        return v

    @model_validator(mode="after")
    def _assets_apart_from_data(self) -> Settings:
        """A `file://` store is an absolute directory that does not hold the
        data directory: everything under it is served at `/assets/`, and the
        database and the secrets must never be."""
        if self.storage_url and self.storage_url.startswith("file://"):
            parts = urlsplit(self.storage_url)
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ValueError(
                    "storage_url: a file URL names an absolute directory, "
                    "e.g. file:///srv/reelgate-assets"
                )
            root = Path(unquote(parts.path)).resolve()
            data = self.data_dir.resolve()
            if data == root or data.is_relative_to(root) or root == Path(root.anchor):
                raise ValueError(
                    "storage_url: the assets directory must not contain the data "
                    "directory (its database and secrets would be served)"
                )
        return self

    @field_validator("luma_api_keys", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        """A JSON list, or comma-separated keys (the easy form in an environment)."""
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("not a valid JSON list of keys") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived values

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'reelgate.db').resolve()}"

    @property
    def assets_dir(self) -> Path:
        """Where local assets live (a `file://` storage URL, else the data directory)."""
        if self.storage_url and self.storage_url.startswith("file://"):
            return Path(unquote(urlsplit(self.storage_url).path))
        return self.data_dir / "assets"

    @property
    def resolved_public_base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def resolved_metrics_dir(self) -> Path | None:
        """Where this host's processes keep their metrics; None while metrics are off."""
        if self.metrics_token is None or not self.metrics_token.get_secret_value():
            return None
        if self.metrics_dir is not None:
            return self.metrics_dir
        host = "".join(c if c.isalnum() or c in "._-" else "_" for c in socket.gethostname())
        return self.data_dir / "metrics" / (host or "localhost")

    @property
    def fetch_limits(self) -> FetchLimits:
        """What the guarded client may fetch and post."""
        return FetchLimits(
            allow_private_networks=self.allow_private_networks,
            timeout=self.fetch_timeout,
            max_bytes=self.fetch_max_bytes,
            max_redirects=self.fetch_max_redirects,
            callback_timeout=self.callback_timeout,
        )

    @property
    def resolved_server_url(self) -> str:
        return (self.server_url or self.resolved_public_base_url).rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI overrides applied; `None` means "not given"."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
