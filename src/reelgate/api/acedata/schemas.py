"""Request bodies as AceData clients send them. Real clients send JSON `null`
for options they leave unset, so every field accepts it."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from reelgate.api.wire import WireModel
from reelgate.domain.models import MAX_PROMPT_CHARS


class VideoRequest(WireModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    action: Literal["generate", "extend"] | None = Field(
        None, description="generate (default) or extend"
    )
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    start_image_url: str | None = Field(None, description="First frame of the video")
    end_image_url: str | None = Field(None, description="Last frame of the video")
    image_urls: list[str] | None = Field(
        None, max_length=2, description="Legacy: [start image, end image]"
    )
    model: str | None = Field(None, description="Legacy model name, e.g. 'luma'")
    aspect_ratio: str | None = None
    loop: bool | None = False
    enhancement: bool | None = True
    timeout: float | None = Field(300, ge=0, description="Seconds a sync call waits")
    callback_url: str | None = None
    async_: bool | None = Field(None, alias="async")
    video_id: str | None = Field(None, description="Extend: our video id (wins over video_url)")
    video_url: str | None = Field(None, description="Extend: URL of the video to continue")
    # reelgate extensions
    resolution: Literal["540p", "720p", "1080p", "4k"] | None = None
    duration: Literal["5s", "9s"] | None = None
    seed: int | None = Field(None, ge=0, lt=2**31)


class TasksRequest(WireModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["retrieve", "retrieve_batch", "cancel"] | None = None
    id: str | None = None
    ids: list[str] | None = Field(None, max_length=500)
