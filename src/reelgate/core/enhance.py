"""Prompt enhancement: turn a terse prompt into one with concrete visual detail.

Enhancement runs in the worker, once per task (the result is stored on the
task, so retries reuse it), never in the request path. The default enhancer
is deterministic (same prompt, same result); `REELGATE_ENHANCER=openai` asks
a language model behind any OpenAI-compatible chat-completions endpoint
(`OpenAIEnhancer`), falling back to the default when it fails or answers
nonsense; a deployment can plug in its own with `REELGATE_ENHANCER=module:attr`.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from reelgate.domain.models import MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from reelgate.config import Settings

log = logging.getLogger(__name__)


class Enhancer(Protocol):
    def enhance(self, prompt: str) -> str: ...


_DETAILS: dict[str, tuple[str, ...]] = {
    "camera": (
        "slow dolly-in",
        "gentle handheld drift",
        "smooth lateral tracking shot",
        "sweeping crane shot",
        "steady orbit around the subject",
        "locked-off wide shot",
    ),
    "light": (
        "warm golden-hour light",
        "soft overcast light",
        "crisp morning light",
        "moody blue-hour light",
        "dramatic rim lighting",
        "neon reflections",
    ),
    "lens": (
        "35mm lens, shallow depth of field",
        "anamorphic lens with subtle flares",
        "50mm lens, natural perspective",
        "wide-angle lens, deep focus",
    ),
    "texture": (
        "fine film grain",
        "rich saturated colours",
        "muted pastel palette",
        "high-contrast cinematic grade",
        "volumetric haze in the air",
    ),
}


class DetailEnhancer:
    """Adds camera, light, lens and texture details chosen by a hash of the prompt."""

    def enhance(self, prompt: str) -> str:
        base = prompt.strip().rstrip(".")
        if not base:
            return prompt
        digest = hashlib.sha256(base.lower().encode("utf-8")).digest()
        picks = [opts[digest[i] % len(opts)] for i, opts in enumerate(_DETAILS.values())]
        return f"{base}. {picks[0].capitalize()}, {picks[1]}, {picks[2]}, {picks[3]}."


class NoEnhancer:
    def enhance(self, prompt: str) -> str:
        return prompt


SYSTEM_PROMPT = """\
You write prompts for a text-to-video model. Turn the user's idea into one \
detailed, cinematic, visually concrete prompt: the subject and what it does, \
the setting, time of day and light, the camera and its movement, the lens, \
colours and texture. Keep the user's subject and every detail they gave, and \
write in the language the user wrote in. Never add text overlays, captions, \
subtitles, logos, watermarks or brand names. Answer with the prompt alone: \
one paragraph of plain text, no title, no quotes, no explanations, at most \
{limit} characters."""
"""What the language model is told; `{limit}` is the longest answer used."""
ANSWER_LIMIT = 1500
"""Longest answer asked for; anything up to MAX_PROMPT_CHARS is still used."""
REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i can(no|')t|i am unable|i'm unable|as an ai|"
    r"i won'?t|unfortunately,? i)",
    re.IGNORECASE,
)


class EnhancerFailed(Exception):
    """The endpoint failed or answered something that is not a usable prompt."""


class OpenAIEnhancer:
    """Asks a language model behind an OpenAI-compatible chat-completions
    endpoint (OpenAI, or a local Ollama, vLLM or llama.cpp server) to write
    the detailed prompt.

    One request, with `timeout` seconds for the whole answer, and one retry;
    when both fail, or the model answers nonsense (nothing, more than the
    dialects' 5000 characters, a refusal), the `fallback` enhancer writes it,
    so a create asked to be enhanced always gets an enhanced prompt."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        *,
        timeout: float,
        fallback: Enhancer,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.fallback = fallback
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    def enhance(self, prompt: str) -> str:
        for attempt in (1, 2):
            try:
                return self._ask(prompt)
            except EnhancerFailed as exc:
                log.warning("prompt enhancer, attempt %d: %s", attempt, exc)
        log.warning("prompt enhancer failed twice; using the built-in enhancer")
        return self.fallback.enhance(prompt)

    def _ask(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT.format(limit=ANSWER_LIMIT)},
                {"role": "user", "content": prompt},
            ],
            "temperature": 0.7,
            "max_tokens": 700,
            "stream": False,
        }
        try:
            answer = self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise EnhancerFailed(f"{exc.__class__.__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise EnhancerFailed(f"HTTP {answer.status_code}: {_error_message(answer)}")
        try:
            content = answer.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EnhancerFailed(f"not a chat completion ({exc.__class__.__name__})") from exc
        return usable(content)

    def close(self) -> None:
        self.client.close()


def usable(content: Any) -> str:
    """The model's answer as a prompt, or EnhancerFailed saying why it is not one."""
    if not isinstance(content, str):
        raise EnhancerFailed("the answer has no text")
    text = content.strip().strip('"\u201c\u201d').strip()
    if not text:
        raise EnhancerFailed("the answer is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise EnhancerFailed(f"the answer is {len(text)} characters (at most {MAX_PROMPT_CHARS})")
    if REFUSAL.match(text):
        raise EnhancerFailed("the model refused")
    if "\x00" in text:
        raise EnhancerFailed("the answer holds NUL characters")
    return text


def _error_message(answer: httpx.Response) -> str:
    """The error an OpenAI-compatible server gives (`{"error": {"message"}}`), briefly."""
    try:
        error = answer.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or answer.text)[:200]


def load_enhancer(spec: str, settings: Settings | None = None) -> Enhancer:
    """`detail`, `none`, `openai` (with the `enhancer_*` settings), or
    `package.module:attribute` (a class or an instance)."""
    if spec == "detail":
        return DetailEnhancer()
    if spec == "none":
        return NoEnhancer()
    if spec == "openai":
        if settings is None or not settings.enhancer_base_url or not settings.enhancer_model:
            raise ValueError(
                "enhancer 'openai' needs REELGATE_ENHANCER_BASE_URL and REELGATE_ENHANCER_MODEL"
            )
        key = settings.enhancer_api_key
        return OpenAIEnhancer(
            settings.enhancer_base_url,
            settings.enhancer_model,
            key.get_secret_value() if key else None,
            timeout=settings.enhancer_timeout,
            fallback=DetailEnhancer(),
        )
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(
            f"enhancer {spec!r}: expected 'detail', 'none', 'openai' or 'module:attribute'"
        )
    target = getattr(importlib.import_module(module_name), attr)
    enhancer: Enhancer = target() if isinstance(target, type) else target  # a plug-in: duck-typed
    return enhancer
