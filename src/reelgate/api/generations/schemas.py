"""Request bodies of the generations dialect (JSON `null` accepted everywhere)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from reelgate.api.wire import WireModel
from reelgate.domain.models import MAX_PROMPT_CHARS


class CreateRequest(WireModel):
    model_config = ConfigDict(extra="ignore")

    user_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    expand_prompt: bool | None = None
    loop: bool | None = None
    image_url: str | None = Field(None, description="URL, data URI or bare Base64")
    image_end_url: str | None = Field(None, description="URL, data URI or bare Base64")
    notify_hook: str | None = None
    aspect_ratio: str | None = None
    model_name: str | None = Field(None, description="ray-v1, ray-v2, ...")
    model: str | None = None
    resolution: Literal["540p", "720p", "1080p", "4k"] | None = None
    duration: Literal["5s", "9s"] | None = None


class UploadRequest(WireModel):
    model_config = ConfigDict(extra="ignore")

    url: str | None = Field(None, description="http(s) URL, data URI or bare Base64")
    file: str | None = Field(None, description="Base64 or data URI (alternative to url)")
