"""`POST /generations/{id}/audio` through the `lumaai` SDK: a new generation
with the source's picture unchanged and an AAC track that is not silence,
sounds like the words of its prompt (measured by its spectrum) and leaves
out what the negative prompt names."""

from __future__ import annotations

import io

import av
import lumaai
import numpy as np
import pytest

from reelgate.media.soundscape import layers_for, soundscape
from reelgate.testing import InProcess, decode_mp4, luma_sdk, psnr, wait_generation


def _audio(data: bytes) -> tuple[np.ndarray, int, str, float]:
    """(samples, sample rate, codec, video seconds) of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        video = container.streams.video[0]
        seconds = float(video.frames / video.average_rate) if video.average_rate else 0.0
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(stream)])
        return samples, stream.rate, stream.codec_context.name, seconds


def _centroid(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


@pytest.mark.slow
def test_audio_adds_a_soundtrack_that_follows_the_prompt(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("audio"))
    source = wait_generation(
        luma, luma.generations.create(model="ray-2", prompt="a rainy street").id
    )
    picture = decode_mp4(app.http().get(source.assets.video).content).frames

    created = luma.generations.audio(
        source.id, prompt="heavy rain on a tin roof", negative_prompt="music"
    )
    assert created.generation_type == "add_audio" and created.id != source.id
    done = wait_generation(luma, created.id)
    assert done.state == "completed", done.failure_reason
    data = app.http().get(done.assets.video).content
    samples, rate, codec, seconds = _audio(data)
    assert codec == "aac" and rate == 48_000
    assert float(np.sqrt((samples**2).mean())) > 0.02, "a track that is heard"
    assert abs(len(samples) / rate - seconds) < 0.1, "as long as the picture"
    frames = decode_mp4(data).frames
    assert len(frames) == len(picture)
    assert psnr(frames[len(frames) // 2], picture[len(picture) // 2]) > 35, "the picture as it was"

    low = wait_generation(luma, luma.generations.audio(source.id, prompt="a music bed").id)
    low_samples, _, _, _ = _audio(app.http().get(low.assets.video).content)
    assert _centroid(samples, rate) > 3 * _centroid(low_samples, rate), "rain hisses, a pad hums"


def test_the_negative_prompt_leaves_sounds_out() -> None:
    assert layers_for("rain, birds and a music bed", "no music") == ["rain", "birds"]
    assert layers_for("a thunderstorm at sea", "") == ["rain", "ocean", "thunder"]
    with_music = soundscape("rain and music", "", 3.0, 1, 48_000)
    without = soundscape("rain and music", "music", 3.0, 1, 48_000)
    rain = soundscape("rain", "", 3.0, 1, 48_000)
    assert np.array_equal(without, rain) and not np.array_equal(with_music, rain)
    assert float(np.abs(soundscape("a quiet room", "", 1.0, 1, 48_000)).max()) > 0.1


@pytest.mark.slow
def test_audio_needs_a_finished_video_of_the_same_token(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("audio-owner"))
    other = luma_sdk(app, app.create_token("audio-other"))
    source = wait_generation(luma, luma.generations.create(model="ray-2", prompt="a meadow").id)
    with pytest.raises(lumaai.NotFoundError):
        other.generations.audio(source.id, prompt="birds")
    with pytest.raises(lumaai.NotFoundError):
        luma.generations.audio("00000000-0000-4000-8000-000000000000", prompt="birds")


def test_engines_that_cannot_make_soundtracks_refuse_them_up_front() -> None:
    from reelgate.engines.base import Needs
    from reelgate.engines.ltx import LtxEngine
    from reelgate.engines.luma import LumaEngine
    from reelgate.engines.preview import PreviewEngine

    needs = Needs("add_audio", frozenset(), "720p", "5s", "16:9")
    assert PreviewEngine.capabilities.lacks("preview", needs) == []
    assert LumaEngine.capabilities.lacks("luma", needs) == []  # forwarded upstream
    assert LtxEngine.capabilities.lacks("ltx", needs) == ["add_audio generations"]
