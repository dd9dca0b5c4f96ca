"""The `luma` engine: the official Dream Machine API (or another reelgate) upstream.

The engine submits a neutral request through the `lumaai` async client with
one of the configured keys (spread by the `KeyPool` it is handed, under
per-key limits that every process shares),
records the upstream id on the task at once, so a crashed worker's successor
follows the same generation rather than paying for a second one, follows the
generation by callback nudges or polling with backoff, and downloads the
finished video and thumbnail (or image) so reelgate can serve them from its
own storage (upstream links expire).

Every official call is forwarded as the call of the same generation type:
videos (text, keyframes, extends, loops, concepts), images, image and video
reframes, modifies, and upscales and soundtracks of generations the upstream
made (by their upstream ids).

Error handling follows what each answer means for the key and the task:
401 sets the key aside for good; 402/403 rest it; 429 rests it for
`Retry-After`; 5xx and connection errors are retried with backoff and count
toward resting a key that keeps failing; other 4xx answers fail the task with
the upstream's own words. While every key rests after failures, one create at
a time probes the key that has rested longest, on a growing backoff, so a
short outage costs seconds rather than the whole cool-down. Each failure
carries its category: the request's fault (400/422), the upstream's, no
usable key, or a deadline passed. A generation that failed because the
upstream could not fetch one of its input images ends the attempt with
`InputUnreachable`, naming the links, so the worker can try again when the
links were its own (the upstream may have fetched while we restarted).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import lumaai
from lumaai.types import Generation

from reelgate.domain.concepts import CONCEPTS
from reelgate.domain.errors import (
    InputUnreachable,
    InvalidInput,
    NoUsableKey,
    TaskError,
    TimedOut,
    Unavailable,
    UpstreamFailed,
)
from reelgate.domain.keys import fingerprint, label
from reelgate.domain.models import (
    GENERATION_TYPES,
    LUMA_IMAGE_MODELS,
    LUMA_MODEL_ALIASES,
    LUMA_VIDEO_MODELS,
    RefRole,
)
from reelgate.domain.reframe import Placement
from reelgate.domain.retry import Backoff
from reelgate.engines.base import (
    UPSTREAM_THUMBNAIL,
    Capabilities,
    EngineServices,
    FileEngine,
    FollowContext,
    Input,
    KeyPool,
    LeaseLost,
    ProducedImage,
    ProducedVideo,
    UpstreamJob,
)
from reelgate.metrics import NO_METRICS, Metrics, outcome_of_status

if TYPE_CHECKING:
    from reelgate.config import Settings

log = logging.getLogger(__name__)

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
"""Connection errors that prove the request never reached the upstream."""
SIZED_MODELS = ("ray-2", "ray-flash-2")
"""Models that take `resolution` and `duration` (ray-1-6 predates them)."""
INPUT_FETCH_FAILED = re.compile(
    r"fetch|download|read user input frames?|answered HTTP \d{3}|not accessible|unreachable",
    re.IGNORECASE,
)
"""How upstreams say they could not get an input image: the official API's
"Failed to read user input frames" (the keyframe images are not accessible to
its servers), a reelgate's "cannot fetch <url>: ..." and "<url> answered HTTP
503", and the usual words of other services."""
URL = re.compile(r"https?://", re.IGNORECASE)
IMAGE_TYPES = frozenset({"image", "reframe_image"})
"""Generation types whose result is an image (`assets.image`), not a video."""
UPSTREAM_IMAGE = "upstream_image"
"""File name, in a run's directory, of the image an upstream made."""
PLACEMENT_FIELDS = {
    "grid_x": "grid_position_x",
    "grid_y": "grid_position_y",
    "x_start": "x_start",
    "x_end": "x_end",
    "y_start": "y_start",
    "y_end": "y_end",
    "resized_width": "resized_width",
    "resized_height": "resized_height",
}
"""A reframe's placement: neutral name -> the official field."""


@dataclass
class LumaConfig:
    base_url: str
    keys: list[str] = field(repr=False)
    default_model: str = "ray-2"
    max_in_flight: int = 10
    per_minute: int = 20
    failure_limit: int = 5
    cooldown: float = 300.0
    poll: float = 2.0
    poll_max: float = 30.0
    timeout: float = 1800.0
    request_timeout: float = 60.0
    max_download_bytes: int = 1024 * 1024 * 1024
    max_unclear_creates: int = 3
    """Creates that may have reached the upstream (5xx, timeouts) before the
    task gives up: each retry risks paying for a duplicate."""
    max_wait: float = 3600.0
    """Cap on any wait an upstream asks for (Retry-After)."""
    key_probe: float = 5.0
    """While every key rests after failures, the first probe comes this long
    after a key's last failure; each failed probe doubles it, up to `cooldown`."""


class _TooLarge(UpstreamFailed):
    """An upstream asset over the size or time cap: trying again would not help."""


def _detail(exc: lumaai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message")
        if detail:
            return str(detail)[:300]
    return str(exc.message)[:300]


def unreachable_inputs(reason: str, sent: list[str]) -> list[str]:
    """The input images (of `sent`) a generation's failure reason says the
    upstream could not fetch: the ones it names, or all of them when it names
    no URL (the official API does not say which). Nothing when the reason is
    not about fetching, or names only URLs we did not send."""
    if not sent or not INPUT_FETCH_FAILED.search(reason):
        return []
    named = [url for url in sent if _mentions(reason, url)]
    if named:
        return named
    return [] if URL.search(reason) else list(sent)


def _mentions(reason: str, url: str) -> bool:
    # Upstreams shorten long links (a reelgate keeps 200 characters), and a
    # signed link's query may differ: its scheme, host and path identify it.
    bare = url.split("#", 1)[0].split("?", 1)[0]
    return bare[:120] in reason


def _sent_images(generation: Any, fallback: list[str]) -> list[str]:
    """The links a generation was made from (keyframe and reference images,
    a reframe's or modify's media and first frame), as the upstream recorded
    its request (known after a restart too), else as this run sent them."""
    request = getattr(generation, "request", None)
    if request is None:
        return fallback
    if hasattr(request, "model_dump"):
        request = request.model_dump()
    return input_urls(request)


def input_urls(request: Any) -> list[str]:
    """Every input link in a request body (what the official API takes as
    `url` fields and a character's `images`), in order and once each."""
    urls: list[str] = []

    def walk(value: Any, key: str | None = None) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, name)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, key)
        elif key in ("url", "images") and isinstance(value, str) and value not in ("", *urls):
            urls.append(value)

    walk(request)
    return urls


def _placement(placement: Placement | None) -> dict[str, int]:
    """A reframe's placement fields, as the official API names them."""
    given = placement.to_dict() if placement else {}
    return {PLACEMENT_FIELDS[name]: value for name, value in given.items()}


def retry_after(exc: lumaai.APIStatusError) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    value = exc.response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def from_settings(settings: Settings, services: EngineServices) -> LumaEngine | None:
    """The luma engine when upstream keys are configured."""
    if not settings.luma_api_keys or services.key_pool is None:
        return None
    return LumaEngine(
        LumaConfig(
            base_url=settings.luma_base_url,
            keys=[key.get_secret_value() for key in settings.luma_api_keys],
            default_model=settings.luma_model,
            max_in_flight=settings.luma_max_concurrent_per_key,
            per_minute=settings.luma_creates_per_minute_per_key,
            failure_limit=settings.luma_key_failure_limit,
            cooldown=settings.luma_key_cooldown_seconds,
            poll=settings.luma_poll_seconds,
            poll_max=settings.luma_poll_max_seconds,
            timeout=settings.luma_timeout_seconds,
            request_timeout=settings.luma_request_timeout,
            max_download_bytes=settings.fetch_max_bytes,
        ),
        services.key_pool,
        services.metrics,
    )


class _Counted(lumaai.DefaultAsyncHttpxClient):
    """The SDK's HTTP client (its defaults, proxies from the environment),
    counting each request to the upstream by its outcome, for one key (by
    its fingerprint), wherever in the engine the SDK sends it."""

    def __init__(self, metrics: Metrics, key_id: str) -> None:
        super().__init__()
        self.metrics = metrics
        self.key_id = key_id

    async def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        try:
            response = await super().send(request, **options)
        except Exception:
            self.metrics.upstream_request(LumaEngine.name, self.key_id, outcome_of_status(None))
            raise
        outcome = outcome_of_status(response.status_code)
        self.metrics.upstream_request(LumaEngine.name, self.key_id, outcome)
        return response


class LumaEngine(FileEngine):
    name = "luma"
    capabilities = Capabilities(
        # Every official call, each forwarded as itself.
        generation_types=frozenset(GENERATION_TYPES.values()),
        # Sizes are the upstream's to judge; it answers 400 with its reason.
        # Keyframes, extends, loops, and an image's references (image_ref,
        # style_ref, character_ref, modify_image_ref) are all forwarded.
        inputs=frozenset(Input) - {Input.VIDEO_URL},
        own_sources_only=True,
        concepts=frozenset(CONCEPTS),  # forwarded as they are
    )

    def __init__(self, config: LumaConfig, keys: KeyPool, metrics: Metrics = NO_METRICS) -> None:
        if not config.keys:
            raise ValueError("the luma engine needs at least one API key")
        self.config = config
        self.keys = keys
        self.secrets = {fingerprint(k): k for k in config.keys}
        self.metrics = metrics
        self.shutdown_grace = config.request_timeout
        self.submit_backoff = Backoff(config.poll, 2.0, config.poll_max)
        self.poll_backoff = Backoff(config.poll, 1.5, config.poll_max)
        self.key_probe = Backoff(min(config.key_probe, config.cooldown), 2.0, config.cooldown)
        keys.register(self.name, config.keys)

    # What the service asks before a task exists

    def model_label(self, requested: str | None) -> str:
        model = LUMA_MODEL_ALIASES.get(requested or "", requested or "")
        if model in LUMA_VIDEO_MODELS or model in LUMA_IMAGE_MODELS:
            return model
        return self.config.default_model

    # Running a task

    def produce(self, job: UpstreamJob, ctx: FollowContext) -> ProducedVideo | ProducedImage:
        return asyncio.run(self._produce(job, ctx))

    async def _produce(self, job: UpstreamJob, ctx: FollowContext) -> ProducedVideo | ProducedImage:
        if job.upstream_id and job.upstream_key:
            gen_id, key_id = job.upstream_id, job.upstream_key
            submitted = job.submitted_at or time.time()
            log.info("task %s: following upstream generation %s again", job.task_id, gen_id)
            images: list[str] = []  # the upstream's record of the request says
        else:
            gen_id, key_id, submitted = await self._submit(job, ctx)
            images = input_urls(self._params(job))
        async with self._client(self._secret(key_id)) as client:
            try:
                ctx.progress(0.02)
                generation = await self._follow(
                    client,
                    ctx,
                    key_id,
                    gen_id,
                    submitted,
                    callbacks=job.callback_url is not None,
                    images=images,
                )
                ctx.progress(0.9)
                if job.generation_type in IMAGE_TYPES:
                    return await self._download_image(generation, job.workdir, ctx)
                return await self._download(generation, job.workdir, ctx)
            except LeaseLost:
                if ctx.deleted():
                    await self._delete(client, gen_id)
                raise

    def _secret(self, key_id: str) -> str:
        secret = self.secrets.get(key_id)
        if secret is None:
            raise Unavailable(
                "the upstream API key that created this generation is no longer "
                "configured, so the generation cannot be followed"
            )
        return secret

    def _client(self, secret: str, timeout: float | None = None) -> lumaai.AsyncLumaAI:
        return lumaai.AsyncLumaAI(
            auth_token=secret,
            base_url=self.config.base_url,
            max_retries=0,
            timeout=timeout or self.config.request_timeout,
            http_client=self._http(secret),
        )

    def _http(self, secret: str) -> httpx.AsyncClient | None:
        """The SDK's own HTTP client, unless metrics are on: then one that
        counts every request (`reelgate_upstream_requests_total`)."""
        if not self.metrics.enabled:
            return None
        return _Counted(self.metrics, fingerprint(secret))

    def _params(self, job: UpstreamJob) -> dict[str, Any]:
        """The create's arguments, as the SDK call of the job's generation
        type takes them (`_create` picks the call)."""
        kind = job.generation_type
        if kind == "video":
            params = self._video_params(job)
        elif kind == "image":
            params = self._image_params(job)
        elif kind in ("reframe_image", "reframe_video", "modify_video"):
            params = self._media_params(job)
        elif kind in ("upscale_video", "add_audio"):
            if not job.source_generation_id:
                raise InvalidInput(f"{kind} needs the upstream generation it works on")
            params = {"id": job.source_generation_id, "generation_type": kind}
            if kind == "upscale_video":
                params["resolution"] = job.resolution
            else:
                if job.prompt:
                    params["prompt"] = job.prompt
                if job.negative_prompt:
                    params["negative_prompt"] = job.negative_prompt
        else:
            raise InvalidInput(f"the {self.name} engine does not support {kind} generations")
        if job.callback_url:
            params["callback_url"] = job.callback_url
        return params

    def _video_model(self, job: UpstreamJob) -> str:
        model = self.model_label(job.model)
        return model if model in LUMA_VIDEO_MODELS else self.config.default_model

    def _image_model(self, job: UpstreamJob) -> str:
        model = self.model_label(job.model)
        return model if model in LUMA_IMAGE_MODELS else LUMA_IMAGE_MODELS[0]

    def _image_params(self, job: UpstreamJob) -> dict[str, Any]:
        params: dict[str, Any] = {
            "generation_type": "image",
            "model": self._image_model(job),
            "aspect_ratio": job.aspect_ratio,
        }
        if job.prompt:
            params["prompt"] = job.prompt
        if job.image_format:
            params["format"] = job.image_format
        weighted = {RefRole.IMAGE: "image_ref", RefRole.STYLE: "style_ref"}
        for role, url, weight in job.references:
            if role in weighted:
                params.setdefault(weighted[role], []).append({"url": url, "weight": weight})
            elif role is RefRole.CHARACTER:
                identity = params.setdefault("character_ref", {"identity0": {"images": []}})
                identity["identity0"]["images"].append(url)
            elif role is RefRole.MODIFY:
                params["modify_image_ref"] = {"url": url, "weight": weight}
        return params

    def _media_params(self, job: UpstreamJob) -> dict[str, Any]:
        """A reframe's or a modify's: the media it works on, its first frame
        (videos), and a reframe's placement or a modify's mode."""
        kind = job.generation_type
        if not job.media_url:
            raise InvalidInput(f"{kind} needs the media it works on (media.url)")
        image = kind == "reframe_image"
        params: dict[str, Any] = {
            "generation_type": kind,
            "model": self._image_model(job) if image else self._video_model(job),
            "media": {"url": job.media_url},
        }
        if job.prompt:
            params["prompt"] = job.prompt
        if image:
            if job.image_format:
                params["format"] = job.image_format
        elif job.start_image_url:
            params["first_frame"] = {"url": job.start_image_url}
        if kind == "modify_video":
            if not job.mode:
                raise InvalidInput("modify_video needs a mode")
            params["mode"] = job.mode
        else:
            params["aspect_ratio"] = job.aspect_ratio
            params.update(_placement(job.placement))
        return params

    def _video_params(self, job: UpstreamJob) -> dict[str, Any]:
        model = self._video_model(job)
        params: dict[str, Any] = {
            "model": model,
            "aspect_ratio": job.aspect_ratio,
            "loop": job.loop,
        }
        if job.prompt:
            params["prompt"] = job.prompt
        if model in SIZED_MODELS:
            params["resolution"] = job.resolution
            params["duration"] = job.duration
        keyframes: dict[str, dict[str, str]] = {}
        if job.extend_generation_id:
            keyframes["frame0"] = {"type": "generation", "id": job.extend_generation_id}
        elif job.start_image_url:
            keyframes["frame0"] = {"type": "image", "url": job.start_image_url}
        if job.leads_into_generation_id:
            keyframes["frame1"] = {"type": "generation", "id": job.leads_into_generation_id}
        elif job.end_image_url:
            keyframes["frame1"] = {"type": "image", "url": job.end_image_url}
        if keyframes:
            params["keyframes"] = keyframes
        if job.concepts:
            params["concepts"] = [{"key": key} for key in job.concepts]
        return params

    @staticmethod
    async def _create(client: lumaai.AsyncLumaAI, kind: str, params: dict[str, Any]) -> Generation:
        """The SDK call that makes a generation of `kind`."""
        generations = client.generations
        calls = {
            "video": generations.create,
            "image": generations.image.create,
            "reframe_image": generations.image.reframe,
            "reframe_video": generations.video.reframe,
            "modify_video": generations.video.modify,
            "upscale_video": generations.upscale,
            "add_audio": generations.audio,
        }
        call: Any = calls[kind]
        generation: Generation = await call(**params)
        return generation

    async def _submit(self, job: UpstreamJob, ctx: FollowContext) -> tuple[str, str, float]:
        """Create the generation with the least busy usable key, moving past keys
        the upstream refuses and waiting out limits and transient errors."""
        deadline = time.time() + self.config.timeout
        backoff = self.submit_backoff.base
        params = self._params(job)
        while True:
            key_id = await self._reserve(ctx, deadline)
            ctx.check()  # never start a create once shutting down
            submitted = time.time()
            async with self._client(self.secrets[key_id]) as client:
                try:
                    with ctx.uninterruptible():
                        generation = await self._create(client, job.generation_type, params)
                except lumaai.APIStatusError as exc:
                    if exc.status_code < 500:
                        if self._key_refused(key_id, exc):
                            continue
                        # 400/422 judge the request; anything else is the upstream's doing
                        refused = InvalidInput if exc.status_code in (400, 422) else UpstreamFailed
                        raise refused(
                            f"the upstream refused the request (HTTP "
                            f"{exc.status_code}): {_detail(exc)}"
                        ) from exc
                    error, maybe_created = f"HTTP {exc.status_code}: {_detail(exc)}", True
                except lumaai.APIConnectionError as exc:
                    error = f"{exc.__class__.__name__}: {exc}"
                    # a connection never made never reached the upstream; a read timeout may have
                    maybe_created = not isinstance(exc.__cause__, NOT_SENT)
                else:
                    return await self._keep(client, ctx, generation, key_id, submitted)
            self._count_failure(key_id, error)
            unclear = ctx.count_unclear_create() if maybe_created else 0
            if unclear >= self.config.max_unclear_creates:
                raise UpstreamFailed(
                    f"the upstream failed {unclear} create requests that it may "
                    f"have received (last: {error}); not trying again, so as not "
                    "to pay for duplicates"
                )
            await self._wait_or_give_up(
                ctx, backoff, deadline, f"the upstream keeps failing ({error})"
            )
            backoff = self.submit_backoff.next(backoff)

    async def _reserve(self, ctx: FollowContext, deadline: float) -> str:
        while True:
            ctx.check()
            try:
                reservation = self.keys.reserve(
                    ctx.task_id,
                    ctx.lease_owner,
                    list(self.secrets),
                    max_in_flight=self.config.max_in_flight,
                    per_minute=self.config.per_minute,
                    probe=self.key_probe,
                    failure_limit=self.config.failure_limit,
                )
            except NoUsableKey:
                raise
            if reservation.key_id is not None:
                if reservation.why == "probe":
                    log.info(
                        "task %s: every key is resting; trying key %s again",
                        ctx.task_id,
                        self._label(reservation.key_id),
                    )
                return reservation.key_id
            if reservation.why == "lease lost":
                raise LeaseLost()
            await self._wait_or_give_up(ctx, reservation.wait, deadline, reservation.why)

    async def _keep(
        self,
        client: lumaai.AsyncLumaAI,
        ctx: FollowContext,
        generation: Any,
        key_id: str,
        submitted: float,
    ) -> tuple[str, str, float]:
        """Put the new upstream id on the task before anything else; if that
        fails, nobody would ever follow the generation, so delete it."""
        gen_id = generation.id
        try:
            if not gen_id or len(gen_id) > 64:
                raise UpstreamFailed(
                    f"the upstream answered a create with no usable id ({gen_id!r})"
                )
            ctx.remember(gen_id, key_id, submitted)
        except BaseException:
            if gen_id:
                await self._delete(client, gen_id)
            raise
        self.keys.succeeded(key_id)
        log.info(
            "task %s: upstream generation %s (key %s)", ctx.task_id, gen_id, self._label(key_id)
        )
        return gen_id, key_id, submitted

    def _key_refused(self, key_id: str, exc: lumaai.APIStatusError) -> bool:
        """Set a key aside when the answer is about the key, not the request."""
        status = exc.status_code
        if status == 401:
            reason = f"was refused by the upstream (HTTP 401: {_detail(exc)})"
            self.keys.set_aside(key_id, reason)
        elif status in (402, 403):
            reason = f"was refused by the upstream (HTTP {status}: {_detail(exc)})"
            self.keys.set_aside(
                key_id, reason, until=time.time() + self._bounded(self.config.cooldown)
            )
        elif status == 429:
            wait = self._bounded(retry_after(exc))
            reason = f"is rate limited by the upstream for {wait:g} s (HTTP 429)"
            self.keys.set_aside(key_id, reason, until=time.time() + wait)
        else:
            return False
        log.warning("upstream key %s %s", self._label(key_id), reason)
        return True

    def _count_failure(self, key_id: str, error: str) -> None:
        if self.keys.failed(
            key_id, error, limit=self.config.failure_limit, cooldown=self.config.cooldown
        ):
            log.warning(
                "upstream key %s set aside for %g s: it failed %d times in a row (last: %s)",
                self._label(key_id),
                self.config.cooldown,
                self.config.failure_limit,
                error,
            )

    def _label(self, key_id: str) -> str:
        return label(self.secrets.get(key_id, ""))

    def _bounded(self, seconds: float | None) -> float:
        """A wait we accept from the upstream or the settings: never so short
        that a refused key is hammered, never longer than `max_wait`."""
        return min(max(seconds or 0.0, self.config.poll), self.config.max_wait)

    @staticmethod
    async def _wait_or_give_up(
        ctx: FollowContext, seconds: float, deadline: float, why: str
    ) -> None:
        if time.time() + seconds > deadline:
            raise Unavailable(f"could not create the upstream generation in time: {why}")
        await ctx.wait(seconds)

    async def _follow(
        self,
        client: lumaai.AsyncLumaAI,
        ctx: FollowContext,
        key_id: str,
        gen_id: str,
        submitted: float,
        *,
        callbacks: bool,
        images: list[str] | None = None,
    ) -> Any:
        """Poll until the generation ends. With callbacks the poll is only a
        safety net: a callback nudge ends each wait early. `images`: the image
        links this run sent, if it made the generation."""
        deadline = submitted + self.config.timeout
        delay = self.config.poll_max if callbacks else self.poll_backoff.base
        failing = False
        while True:
            wait = delay
            try:
                generation = await client.generations.get(gen_id)
            except lumaai.NotFoundError as exc:
                raise UpstreamFailed(f"the upstream generation {gen_id} no longer exists") from exc
            except lumaai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code != 429:
                    self._key_refused(key_id, exc)
                    raise UpstreamFailed(
                        f"the upstream refused to show generation {gen_id} (HTTP "
                        f"{exc.status_code}): {_detail(exc)}"
                    ) from exc
                if exc.status_code == 429:
                    wait = self._bounded(retry_after(exc) or delay)
                else:
                    self._count_failure(key_id, f"HTTP {exc.status_code}: {_detail(exc)}")
                    failing = True
            except lumaai.APIConnectionError as exc:
                self._count_failure(key_id, f"{exc.__class__.__name__}: {exc}")
                failing = True
            else:
                if failing:
                    self.keys.succeeded(key_id)
                    failing = False
                if generation.state == "completed":
                    return generation
                if generation.state == "failed":
                    reason = generation.failure_reason or "no reason given"
                    unreachable = unreachable_inputs(reason, _sent_images(generation, images or []))
                    if unreachable:
                        raise InputUnreachable(
                            "the upstream generation failed: " + reason, urls=tuple(unreachable)
                        )
                    raise UpstreamFailed("the upstream generation failed: " + reason)
                ctx.progress(0.1 if generation.state == "dreaming" else 0.05)
                delay = self.poll_backoff.next(delay)
            remaining = deadline - time.time()
            if remaining <= 0:
                await self._delete(client, gen_id)
                raise TimedOut(
                    f"the upstream generation did not finish within "
                    f"{self.config.timeout:g} s; it was cancelled upstream"
                )
            await ctx.wait(min(wait, remaining))

    async def _download(self, generation: Any, workdir: Path, ctx: FollowContext) -> ProducedVideo:
        assets = generation.assets
        if assets is None or not assets.video:
            raise UpstreamFailed(
                f"the upstream generation {generation.id} completed without a video"
            )
        video = workdir / "video.mp4"
        async with httpx.AsyncClient(
            follow_redirects=True, timeout=self.config.request_timeout
        ) as http:
            await self._fetch(http, assets.video, video, ctx)
            thumbnail = None
            if assets.image:
                try:
                    thumbnail = workdir / UPSTREAM_THUMBNAIL
                    await self._fetch(http, assets.image, thumbnail, ctx)
                except TaskError as exc:  # the worker makes one from the video
                    log.warning("upstream thumbnail of %s: %s", generation.id, exc)
                    thumbnail = None
        return ProducedVideo(video, thumbnail)

    async def _download_image(
        self, generation: Any, workdir: Path, ctx: FollowContext
    ) -> ProducedImage:
        """An image generation's picture (`assets.image`); the worker decodes
        it and stores it in the task's format."""
        assets = generation.assets
        if assets is None or not assets.image:
            raise UpstreamFailed(
                f"the upstream generation {generation.id} completed without an image"
            )
        image = workdir / UPSTREAM_IMAGE
        async with httpx.AsyncClient(
            follow_redirects=True, timeout=self.config.request_timeout
        ) as http:
            await self._fetch(http, assets.image, image, ctx)
        return ProducedImage(image)

    async def _fetch(
        self, http: httpx.AsyncClient, url: str, path: Path, ctx: FollowContext, attempts: int = 3
    ) -> None:
        """Download an upstream asset (capped in size and in overall time, and
        stopped when the task is no longer ours), retrying transient failures."""
        deadline = time.monotonic() + self.config.request_timeout * 10
        for attempt in range(1, attempts + 1):
            try:
                async with http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise Unavailable(
                            f"upstream asset answered HTTP {response.status_code}",
                            retryable=True,
                        )
                    total = 0
                    with path.open("wb") as out:
                        async for chunk in response.aiter_bytes():
                            total += len(chunk)
                            if total > self.config.max_download_bytes:
                                raise _TooLarge(
                                    "upstream asset is larger than "
                                    f"{self.config.max_download_bytes} bytes"
                                )
                            if time.monotonic() > deadline:
                                raise _TooLarge(
                                    "upstream asset download took longer than "
                                    f"{self.config.request_timeout * 10:g} s"
                                )
                            ctx.progress(0.9)  # raises LeaseLost once the task is gone
                            out.write(chunk)
                return
            except _TooLarge:
                raise
            except (httpx.HTTPError, Unavailable) as exc:
                if attempt == attempts:
                    if isinstance(exc, Unavailable):
                        raise
                    # the next attempt follows the same generation and downloads again
                    raise Unavailable(
                        f"cannot download the upstream asset: {exc.__class__.__name__}",
                        retryable=True,
                    ) from exc
                await asyncio.sleep(self.submit_backoff.delay(attempt))

    async def _delete(self, client: lumaai.AsyncLumaAI, gen_id: str) -> None:
        try:
            await client.generations.delete(gen_id)
            log.info("upstream generation %s deleted", gen_id)
        except lumaai.NotFoundError:
            pass
        except lumaai.LumaAIError as exc:
            log.warning("could not delete upstream generation %s: %s", gen_id, exc)

    def cancel(self, upstream_id: str, key_id: str | None) -> None:
        secret = self.secrets.get(key_id or "")
        if secret is None:
            log.warning(
                "cannot cancel upstream generation %s: its key is not configured", upstream_id
            )
            return

        async def run() -> None:
            # a client is waiting on its DELETE: a short timeout, one attempt
            async with self._client(secret, min(self.config.request_timeout, 10.0)) as c:
                await self._delete(c, upstream_id)

        asyncio.run(run())
