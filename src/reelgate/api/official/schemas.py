"""Request bodies of the official API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from reelgate.api.wire import WireModel

AspectRatio = Literal["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]
ImageFormat = Literal["jpg", "png"]
Url = Annotated[str, Field(min_length=1, max_length=20_000_000)]
Pixels = Annotated[int, Field(ge=0, le=8192)]


class ImageKeyframe(WireModel):
    type: Literal["image"]
    url: str = Field(max_length=20_000_000)


class GenerationKeyframe(WireModel):
    type: Literal["generation"]
    id: str = Field(max_length=64)


Keyframe = Annotated[ImageKeyframe | GenerationKeyframe, Field(discriminator="type")]


class Keyframes(WireModel):
    frame0: Keyframe | None = None
    frame1: Keyframe | None = None


class Concept(WireModel):
    key: str = Field(max_length=64)


class CreateGeneration(WireModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("ray-2", description="ray-1-6, ray-2 or ray-flash-2")
    prompt: str | None = None
    aspect_ratio: AspectRatio | None = None
    loop: bool | None = None
    keyframes: Keyframes | None = None
    resolution: Literal["540p", "720p", "1080p", "4k"] | None = None
    duration: Literal["5s", "9s"] | None = None
    callback_url: str | None = None
    generation_type: Literal["video"] | None = None
    concepts: list[Concept] | None = Field(None, max_length=16)


class Upscale(WireModel):
    model_config = ConfigDict(extra="ignore")

    resolution: Literal["540p", "720p", "1080p", "4k"] | None = None
    callback_url: str | None = None
    generation_type: Literal["upscale_video"] | None = None


class AddAudio(WireModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str | None = Field(None, max_length=5000)
    negative_prompt: str | None = Field(None, max_length=5000)
    callback_url: str | None = None
    generation_type: Literal["add_audio"] | None = None


class Media(WireModel):
    url: str = Field(min_length=1, max_length=20_000_000)


class ModifyVideo(WireModel):
    model_config = ConfigDict(extra="ignore")

    generation_type: Literal["modify_video"] | None = None
    media: Media
    mode: Literal[
        "adhere_1",
        "adhere_2",
        "adhere_3",
        "flex_1",
        "flex_2",
        "flex_3",
        "reimagine_1",
        "reimagine_2",
        "reimagine_3",
    ]
    model: str = "ray-2"
    prompt: str | None = Field(None, max_length=5000)
    first_frame: Media | None = None
    callback_url: str | None = None


class WeightedImage(WireModel):
    """`image_ref`, `style_ref` and `modify_image_ref` entries."""

    url: Url
    weight: float | None = Field(None, ge=0.0, le=1.0)


class Identity(WireModel):
    images: list[Url] | None = Field(None, max_length=4)


class CharacterRef(WireModel):
    identity0: Identity | None = None


class CreateImage(WireModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("photon-1", description="photon-1 or photon-flash-1")
    prompt: str | None = None
    aspect_ratio: AspectRatio | None = None
    generation_type: Literal["image"] | None = None
    image_ref: list[WeightedImage] | None = Field(None, max_length=4)
    style_ref: list[WeightedImage] | None = Field(None, max_length=4)
    character_ref: CharacterRef | None = None
    modify_image_ref: WeightedImage | None = None
    format: ImageFormat | None = None
    sync: bool | None = None
    sync_timeout: float | None = Field(None, ge=0)
    callback_url: str | None = None


class ReframeFields(WireModel):
    """What both reframe calls share."""

    model_config = ConfigDict(extra="ignore")

    media: Media
    aspect_ratio: AspectRatio
    prompt: str | None = Field(None, max_length=5000)
    grid_position_x: Pixels | None = None
    grid_position_y: Pixels | None = None
    x_start: Pixels | None = None
    x_end: Pixels | None = None
    y_start: Pixels | None = None
    y_end: Pixels | None = None
    resized_width: Pixels | None = None
    resized_height: Pixels | None = None
    callback_url: str | None = None


class ReframeImage(ReframeFields):
    generation_type: Literal["reframe_image"] | None = None
    model: str = "photon-1"
    format: ImageFormat | None = None


class ReframeVideo(ReframeFields):
    generation_type: Literal["reframe_video"] | None = None
    model: str = "ray-2"
    first_frame: Media | None = None
