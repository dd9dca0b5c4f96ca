"""The ltx engine with a tiny LTX-Video built from configs (no downloads):
saved with save_pretrained, loaded by the engine's real loader, and run for
every request shape on the CPU."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from reelgate.config import Settings
from reelgate.domain.errors import InvalidInput, Unavailable
from reelgate.domain.models import MODIFY_MODES, RefRole
from reelgate.engines import ltx
from reelgate.engines.base import EngineServices, ImageReference, RenderJob
from reelgate.engines.ltx import MODIFY_STRENGTH, LtxConfig, LtxEngine
from reelgate.media.encode import encode_mp4
from reelgate.media.images import cover_fit
from reelgate.media.probe import iter_frames_at, probe_video
from reelgate.testing import png_bytes, psnr, textured_image

# The ltx extra's libraries load only in the tests that use them (torch alone
# takes seconds to import), so collecting this module stays quick.
pytestmark = pytest.mark.skipif(
    not all(find_spec(name) for name in ("torch", "diffusers", "transformers")),
    reason="needs the ltx extra (torch, diffusers, transformers)",
)

W, H = 64, 32


def tiny_tokenizer():
    """A T5-style tokenizer trained here on a few words (no hub access)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=60, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(
        [
            "a fox runs in the snow",
            "waves on a beach at dusk",
            "worst quality blurry jittery distorted video",
        ],
        trainer,
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_vae():
    """LTX-Video 0.9.5's VAE (the 2B 0.9.5 to 0.9.8 and 13B one) shrunk in
    width only: its geometry is the real one (patches of 4, 32x spatial and
    8x temporal compression, the 0.9.5 down blocks) and its decoder is
    timestep-conditioned, so renders decode at `decode_timestep` with
    `decode_noise_scale` of noise as real ones do."""
    from diffusers import AutoencoderKLLTXVideo

    return AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8, 8),
        down_block_types=("LTXVideo095DownBlock3D",) * 4,
        decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True,) * 4,
        decoder_spatio_temporal_scaling=(True,) * 3,
        decoder_inject_noise=(False,) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True,) * 3,
        upsample_factor=(2,) * 3,
        timestep_conditioning=True,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    import transformers
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    torch.manual_seed(0)
    vae = tiny_vae()
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    text_encoder = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=tokenizer.vocab_size,
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    )
    pipe = LTXConditionPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )
    path = tmp_path_factory.mktemp("ltx-tiny")
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(weights: Path) -> LtxEngine:
    return LtxEngine(
        LtxConfig(weights=str(weights), device="cpu", overrides={"steps": 2, "guidance": 3.0})
    )


def sharing(engine: LtxEngine, pipe=None, **config) -> LtxEngine:
    """An engine like `engine` with other settings, its loaded pipeline (or
    `pipe` standing in for it) shared instead of loaded again."""
    other = LtxEngine(replace(engine.config, **config))
    loaded, variant = engine.loaded()
    other._pipelines[other.weights_for(None)] = (pipe or loaded, variant)
    return other


def job(n: int = 9, **kw) -> RenderJob:
    return RenderJob(
        **{
            "task_id": "t",
            "prompt": "a fox runs in the snow",
            "seed": 3,
            "width": W,
            "height": H,
            "fps": 24,
            "num_frames": n,
            **kw,
        }
    )


def frame_indexes(engine: LtxEngine, j: RenderJob) -> list[tuple[str, int]]:
    conditions, _, _ = engine.conditions(j)
    return [("video" if c.video is not None else "image", c.frame_index) for c in conditions]


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_every_request_shape_places_its_conditions(engine: LtxEngine, tmp_path: Path) -> None:
    start, end = textured_image(96, 48, seed=1), textured_image(96, 48, seed=2)
    assert frame_indexes(engine, job()) == []
    assert frame_indexes(engine, job(start_image=start)) == [("image", 0)]
    assert frame_indexes(engine, job(start_image=start, end_image=end)) == [
        ("image", 0),
        ("image", 8),
    ]
    assert frame_indexes(engine, job(end_image=end)) == [("image", 8)]
    # what the clip leads into is conditioned one past its last frame
    assert frame_indexes(engine, job(start_image=start, loop=True)) == [("image", 0), ("image", 9)]
    assert frame_indexes(engine, job(end_image=end, end_image_follows=True)) == [("image", 9)]
    assert engine.conditions(job(end_image=end, end_image_follows=True))[2] == 17
    source = tmp_path / "source.mp4"
    encode_mp4(
        iter([np.roll(textured_image(W, H), i, axis=1) for i in range(17)]),
        source,
        width=W,
        height=H,
    )
    extend = job(source_video=source)
    conditions, skip, total = engine.conditions(extend)
    assert [(c.frame_index, len(c.video)) for c in conditions] == [(0, 9)]
    assert skip == 9 and total == 25 and (total - 1) % 8 == 0
    looped = job(source_video=source, loop=True)
    assert frame_indexes(engine, looped) == [("video", 0), ("image", 9 + 9)]


@pytest.mark.slow  # the tiny model: built once, about 3 s
@pytest.mark.parametrize("shape", ["text", "start", "start+end", "extend"])
def test_frames_reach_the_encoder_at_the_right_size_and_count(
    engine: LtxEngine, shape: str, tmp_path: Path
) -> None:
    kw: dict = {}
    if shape in ("start", "start+end"):
        kw["start_image"] = textured_image(W, H, seed=4)
    if shape == "start+end":
        kw["end_image"] = textured_image(W, H, seed=5)
    if shape == "extend":
        source = tmp_path / "source.mp4"
        encode_mp4(iter([textured_image(W, H, seed=6)] * 9), source, width=W, height=H)
        kw["source_video"] = source
    steps: list[float] = []
    path = tmp_path / "out.mp4"
    encode_mp4(engine.render(job(n=9, **kw), steps.append), path, width=W, height=H)
    info = probe_video(path)
    assert (info.width, info.height, info.frames) == (W, H, 9)
    assert len([s for s in steps if s < 1.0]) == 2, "progress once per denoising step"
    assert steps[-1] == 1.0


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_same_seed_same_video(engine: LtxEngine) -> None:
    a = list(engine.render(job(seed=11), lambda _: None))
    b = list(engine.render(job(seed=11), lambda _: None))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_the_pipeline_is_loaded_once(engine: LtxEngine) -> None:
    assert engine.pipeline() is engine.pipeline()


@pytest.mark.slow  # its first render imports torch and diffusers (about 5 s)
def test_missing_weights_give_a_clear_error(tmp_path: Path) -> None:
    broken = LtxEngine(LtxConfig(weights=str(tmp_path / "nowhere"), device="cpu"))
    with pytest.raises(Unavailable, match="could not be loaded") as failed:
        list(broken.render(job(), lambda _: None))
    assert not failed.value.retryable, "another attempt would load the same nothing"
    with pytest.raises(InvalidInput, match="8k\\+1"):
        broken.check_frames(64, 64, 10)
    broken.check_frames(100, 60, 9)  # off the grid: padded onto it, cropped back


@pytest.mark.slow  # a server process
def test_models_route_to_ltx_and_a_worker_survives_missing_weights(tmp_path: Path) -> None:
    import time

    from lumaai import LumaAI

    from reelgate.testing import Server

    srv = Server(
        tmp_path / "data",
        env={
            "REELGATE_LTX_WEIGHTS": str(tmp_path / "no-weights-here"),
            "REELGATE_MODEL_ENGINES": '{"ray-2": "ltx"}',
        },
    ).start()
    try:
        client = LumaAI(
            auth_token=srv.create_token("gpu"),
            max_retries=0,
            base_url=srv.url + "/dream-machine/v1",
        )

        def finish(generation_id: str):
            for _ in range(300):
                g = client.generations.get(generation_id)
                if g.state in ("completed", "failed"):
                    return g
                time.sleep(0.2)
            raise AssertionError("did not finish")

        ltx = finish(client.generations.create(model="ray-2", prompt="needs a gpu").id)
        assert ltx.state == "failed" and ltx.model == "ltx-video"
        assert "could not be loaded" in ltx.failure_reason
        preview = finish(client.generations.create(model="ray-flash-2", prompt="still works").id)
        assert preview.state == "completed" and preview.model == "reelgate-preview"
    finally:
        srv.stop()


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_gpu_out_of_memory_becomes_a_clear_error(weights: Path) -> None:
    import torch

    oom = LtxEngine(LtxConfig(weights=str(weights), device="cpu", overrides={"steps": 1}))
    pipe, variant = oom.loaded()

    class OutOfMemory:
        """Stands in for a GPU that has no memory left (none exists here)."""

        def __getattr__(self, name: str):
            return getattr(pipe, name)

        def __call__(self, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    oom._pipelines[str(weights)] = (OutOfMemory(), variant)
    with pytest.raises(Unavailable, match="ran out of memory"):
        list(oom.render(job(), lambda _: None))


@pytest.mark.slow  # imports diffusers, a few seconds
def test_an_extension_is_conditioned_on_the_source_as_it_plays(tmp_path: Path) -> None:
    """The model reads its condition frames as frames at the output rate, so
    a 60 fps source's ending reaches it at 24 fps: the nine frames span 8/24 s
    of the source, not 8/60 s (which would tell it everything moves slower)."""
    rate = 60
    source = tmp_path / "source.mp4"
    greys = [2 * k for k in range(2 * rate)]  # two seconds, brighter by the frame
    encode_mp4(
        (np.full((H, W, 3), g, np.uint8) for g in greys), source, width=W, height=H, fps=rate
    )
    engine = LtxEngine(LtxConfig(weights="unused"))  # conditions load no weights
    (condition,), skip, _ = engine.conditions(job(source_video=source))
    shown = [float(np.asarray(image).mean()) for image in condition.video]
    assert skip == len(shown) == 9
    played = [greys[i * rate // 24] for i in range(2 * 24 - 9, 2 * 24)]
    assert shown == pytest.approx(played, abs=4)


# Images, modify, upscale; what the engine does not do


class Recording:
    """The engine's real pipeline, its every call's arguments kept."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.calls: list[dict] = []

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(**kwargs)


def recorded(engine: LtxEngine, **config) -> tuple[LtxEngine, Recording]:
    """An engine like `engine` (its loaded pipeline shared) whose pipeline calls are kept."""
    pipe = Recording(engine.pipeline())
    return sharing(engine, pipe, **config), pipe


def clip(path: Path, width: int, height: int, count: int) -> list[np.ndarray]:
    """A moving textured clip of `count` frames, written to `path`; its frames
    as they decode."""
    frames = [np.roll(textured_image(width, height, seed=3), 3 * i, axis=1) for i in range(count)]
    encode_mp4(iter(frames), path, width=width, height=height)
    return list(iter_frames_at(path, 24))


def still(seed: int = 3, *refs: ImageReference) -> RenderJob:
    return job(n=1, seed=seed, still=True, references=refs)


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_an_image_is_one_frame_of_the_size_asked_for_and_its_seed_decides_it(
    engine: LtxEngine,
) -> None:
    spy, pipe = recorded(engine)
    steps: list[float] = []
    (image,) = spy.render(still(seed=5), steps.append)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert pipe.calls[0]["num_frames"] == 1 and pipe.calls[0]["conditions"] is None
    assert steps[-1] == 1.0
    (again,) = spy.render(still(seed=5), lambda _: None)
    (other,) = spy.render(still(seed=6), lambda _: None)
    assert np.array_equal(image, again) and not np.array_equal(image, other)


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_image_references_condition_the_frame_as_strongly_as_their_weights(
    engine: LtxEngine,
) -> None:
    """The tiny random model decodes every latent to much the same picture, so
    what a person would see (a weight of 1 keeping the picture, 0.1 barely
    touching it) is checked where it is decided: the conditions the pipeline
    is called with."""
    spy, pipe = recorded(engine)
    picture = textured_image(96, 48, seed=7)  # another size: fitted to the frame
    layout = textured_image(W, H, seed=8)
    for weight in (1.0, 0.1):
        (image,) = spy.render(
            still(3, ImageReference(RefRole.MODIFY, picture, weight)), lambda _: None
        )
        assert image.shape == (H, W, 3)
    strong, weak = (call["conditions"] for call in pipe.calls)
    assert [(c.frame_index, c.strength) for c in strong] == [(0, 1.0)]
    assert [(c.frame_index, c.strength) for c in weak] == [(0, 0.1)]
    assert np.array_equal(np.asarray(strong[0].image), cover_fit(picture, W, H))

    both = still(
        3,
        ImageReference(RefRole.MODIFY, picture, 0.9),
        ImageReference(RefRole.IMAGE, layout, 0.4),
    )
    conditions, skip, total = spy.conditions(both)
    assert (skip, total) == (0, 1)
    assert [c.strength for c in conditions] == [0.4, 0.9], "the strongest is folded in last"
    assert np.array_equal(np.asarray(conditions[0].image), layout)
    for role in (RefRole.STYLE, RefRole.CHARACTER):
        with pytest.raises(InvalidInput, match=f"cannot use {role.value} references"):
            list(spy.render(still(3, ImageReference(role, layout, 1.0)), lambda _: None))


@pytest.mark.slow  # imports diffusers, a few seconds
def test_a_modify_holds_the_source_less_the_freer_its_mode(tmp_path: Path) -> None:
    engine = LtxEngine(LtxConfig(weights="unused"))  # conditions load no weights
    source = tmp_path / "source.mp4"
    frames = clip(source, 72, 40, 11)  # neither on the 32-pixel grid nor 8k+1 frames
    strengths = []
    for mode in MODIFY_MODES:
        conditions, total = engine.modify_conditions(
            job(n=11, width=72, height=40, source_video=source, modify=mode)
        )
        (video,) = conditions
        assert video.frame_index == 0 and total == 17 and len(video.video) == 17
        assert video.video[0].size == (64, 32), "the source, on the grid"
        strengths.append(video.strength)
    assert strengths == sorted(strengths, reverse=True) and len(set(strengths)) == 9
    assert strengths[0] >= 0.8 and strengths[-1] <= 0.3, "adhere keeps it, reimagine frees it"
    held = np.asarray(conditions[0].video[-1])
    assert np.array_equal(held, np.asarray(conditions[0].video[10])), "held at its end"
    assert psnr(np.asarray(conditions[0].video[4]), cv2.resize(frames[4], (64, 32))) > 30

    opening = textured_image(72, 40, seed=9)
    with_first = job(n=11, width=72, height=40, source_video=source, modify="flex_1")
    with_first.start_image = opening
    video, first = engine.modify_conditions(with_first)[0]
    assert (first.frame_index, first.strength, first.image.size) == (0, 1.0, (64, 32))


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_modified_video_has_the_source_frame_count_and_size(
    engine: LtxEngine, tmp_path: Path
) -> None:
    source = tmp_path / "source.mp4"
    clip(source, 72, 40, 11)
    spy, pipe = recorded(engine)
    steps: list[float] = []
    modified = job(n=11, width=72, height=40, source_video=source, modify="reimagine_1")
    frames = list(spy.render(modified, steps.append))
    assert len(frames) == 11 and {f.shape for f in frames} == {(40, 72, 3)}
    (call,) = pipe.calls
    assert (call["width"], call["height"], call["num_frames"]) == (64, 32, 17)
    assert [c.strength for c in call["conditions"]] == [MODIFY_STRENGTH["reimagine_1"]]
    assert len([s for s in steps if s < 1.0]) == 2 and steps[-1] == 1.0
    out = tmp_path / "out.mp4"
    encode_mp4(iter(frames), out, width=72, height=40)
    assert (probe_video(out).frames, probe_video(out).width) == (11, 72)


@pytest.fixture(scope="module")
def upsampler_weights(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny latent upsampler saved two ways: the model's own folder, and a
    whole upsample pipeline (model_index.json) as LTX-Video publishes it."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(0)
    model = LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1)
    folders = {"model": tmp_path_factory.mktemp("upsampler-model")}
    model.save_pretrained(folders["model"])
    folders["pipeline"] = tmp_path_factory.mktemp("upsampler-pipeline")
    vae = AutoencoderKLLTXVideo.from_pretrained(weights / "vae")
    LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=model).save_pretrained(folders["pipeline"])
    return folders


@pytest.mark.slow  # the tiny model: built once, about 3 s
@pytest.mark.parametrize("saved_as", ["model", "pipeline"])
def test_an_upscale_runs_the_latent_upsampler_and_comes_out_at_the_exact_size(
    engine: LtxEngine,
    upsampler_weights: dict[str, Path],
    saved_as: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "source.mp4"
    clip(source, W, H, 11)
    upscaler = sharing(engine, upsampler=str(upsampler_weights[saved_as]))
    assert "upscale_video" in upscaler.capabilities.generation_types
    ran: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    upscaler.latent_upsampler().register_forward_hook(
        lambda module, args, out: ran.append((tuple(args[0].shape), tuple(out.shape)))
    )
    monkeypatch.setattr(ltx, "UPSCALE_CHUNK_FRAMES", 9)  # two chunks: 9 frames, then 2
    steps: list[float] = []
    width, height = 96, 48  # not twice the source: decoded at 128x64, then resized
    upscale = job(n=11, width=width, height=height, source_video=source, upscale=True)
    frames = list(upscaler.render(upscale, steps.append))
    assert len(frames) == 11 and {f.shape for f in frames} == {(height, width, 3)}
    assert len(ran) == 2, "the upsampler ran on each chunk"
    for before, after in ran:
        assert after[-2:] == (2 * before[-2], 2 * before[-1]), "latents doubled in size"
    assert steps[-1] == 1.0 and len(steps) == 3
    assert upscaler.latent_upsampler() is upscaler.latent_upsampler(), "loaded once"


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_missing_upsampler_weights_give_a_clear_error(engine: LtxEngine, tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    clip(source, W, H, 9)
    broken = sharing(engine, upsampler=str(tmp_path / "nowhere"))
    upscale = job(n=9, width=2 * W, height=2 * H, source_video=source, upscale=True)
    with pytest.raises(Unavailable, match="latent upsampler could not be loaded"):
        list(broken.render(upscale, lambda _: None))


def test_upscales_are_declared_only_with_an_upsampler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = ltx.from_settings(Settings(data_dir=tmp_path, ltx_weights="w"), EngineServices())
    assert without is not None
    assert without.capabilities.generation_types == {"video", "image", "modify_video"}
    monkeypatch.setenv("REELGATE_LTX_UPSAMPLER", str(tmp_path / "upsampler"))
    settings = Settings(data_dir=tmp_path, ltx_weights="w")
    assert settings.ltx_upsampler == str(tmp_path / "upsampler")
    upscaling = ltx.from_settings(settings, EngineServices())
    assert upscaling is not None and upscaling.config.upsampler == settings.ltx_upsampler
    assert "upscale_video" in upscaling.capabilities.generation_types
    assert "upscale_video" not in LtxEngine.capabilities.generation_types, "per engine"


def test_what_ltx_cannot_do_is_refused_with_a_400_naming_it(tmp_path: Path) -> None:
    import lumaai

    from reelgate.domain.models import Asset, TaskResult
    from reelgate.testing import in_process, luma_sdk, new_task

    png = "data:image/png;base64," + base64.b64encode(png_bytes(textured_image(64, 48))).decode()
    video = "https://example.com/a.mp4"
    with in_process(
        tmp_path,
        workers=0,  # what is accepted stays queued
        ltx_weights=str(tmp_path / "never-loaded"),
        model_engines={"ray-2": "ltx", "photon-1": "ltx"},
    ) as app:
        owner, secret = app.runtime.tokens.create("ltx")
        luma = luma_sdk(app, secret)
        # an ltx video to work on, finished
        made = new_task(app.runtime.tasks, owner.id, engine="ltx", model="ltx-video")
        claimed = app.runtime.tasks.claim(60, 3)
        assert claimed is not None and claimed.id == made.id and claimed.lease_owner
        asset = Asset(f"{made.id}/run/video.mp4", 960, 544, "video/mp4")
        assert app.runtime.tasks.complete(
            made.id, claimed.lease_owner, TaskResult(asset, asset, asset)
        )

        refusals = {
            "style references (style_ref)": lambda: luma.generations.image.create(
                model="photon-1", prompt="a harbour", style_ref=[{"url": png, "weight": 0.8}]
            ),
            "character references (character_ref)": lambda: luma.generations.image.create(
                model="photon-1",
                prompt="a person on a pier",
                character_ref={"identity0": {"images": [png]}},
            ),
            "reframe_image generations": lambda: luma.generations.image.reframe(
                generation_type="reframe_image",
                model="photon-1",
                aspect_ratio="16:9",
                media={"url": png},
            ),
            "reframe_video generations": lambda: luma.generations.video.reframe(
                generation_type="reframe_video",
                model="ray-2",
                aspect_ratio="9:16",
                media={"url": video},
            ),
            "add_audio generations": lambda: luma.generations.audio(made.id, prompt="rain"),
            "upscale_video generations": lambda: luma.generations.upscale(
                made.id, resolution="1080p"
            ),
        }
        for lacks, call in refusals.items():
            with pytest.raises(lumaai.BadRequestError) as refused:
                call()
            assert f"the ltx engine does not support {lacks}" in str(refused.value), lacks

        accepted = [
            luma.generations.image.create(
                model="photon-1",
                prompt="the same harbour at night",
                image_ref=[{"url": png, "weight": 0.5}],
                modify_image_ref={"url": png, "weight": 0.9},
            ),
            luma.generations.video.modify(
                generation_type="modify_video",
                media={"url": video},
                mode="flex_2",
                model="ray-2",
                prompt="as a watercolour",
                first_frame={"url": png},
            ),
        ]
        assert [g.state for g in accepted] == ["queued", "queued"]
        assert {app.runtime.tasks.get(g.id).engine for g in accepted} == {"ltx"}


# Real checkpoints: concurrency, memory, formats, recipes, sources


def renders(engine: LtxEngine, jobs: list[RenderJob]) -> list[list[np.ndarray]]:
    return [list(engine.render(j, lambda _: None)) for j in jobs]


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_renders_at_the_same_time_are_the_renders_one_after_another(engine: LtxEngine) -> None:
    """Worker threads share the engine's one pipeline; each render must still
    be exactly what it would be alone."""
    from concurrent.futures import ThreadPoolExecutor

    racing = sharing(
        engine, profiles={"ray-2": {"steps": 3}, "ray-flash-2": {"steps": 5, "guidance": 5.0}}
    )
    jobs = [
        job(n=17, seed=1, model="ray-2", start_image=textured_image(W, H, seed=1)),
        job(n=9, seed=2, model="ray-flash-2", prompt="waves on a beach at dusk"),
    ]
    alone = renders(racing, jobs)
    for _ in range(2):
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda j: renders(racing, [j])[0], jobs))
        for one, other in zip(alone, together, strict=True):
            assert len(one) == len(other)
            assert all(np.array_equal(a, b) for a, b in zip(one, other, strict=True))


def plain_engine(weights_source: str | Path, **config) -> LtxEngine:
    return LtxEngine(
        LtxConfig(
            weights=str(weights_source),
            device="cpu",
            overrides={"steps": 2, "guidance": 3.0},
            **config,
        )
    )


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_checkpoint_whose_scheduler_shifts_dynamically_renders(
    engine: LtxEngine, weights: Path, tmp_path: Path
) -> None:
    """The LTX-Video repository's root (0.9.0) has `use_dynamic_shifting`: the
    pipeline never passes the `mu` that needs, so every render used to fail.
    It renders exactly as the same checkpoint without the shift."""
    import shutil

    from diffusers import FlowMatchEulerDiscreteScheduler

    shifting = tmp_path / "LTX-Video"
    shutil.copytree(weights, shifting)
    FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, shift_terminal=0.1
    ).save_pretrained(shifting / "scheduler")
    shifted = plain_engine(shifting)
    start = textured_image(W, H, seed=4)
    made = list(shifted.render(job(start_image=start), lambda _: None))
    same = list(engine.render(job(start_image=start), lambda _: None))
    assert len(made) == 9 and all(np.array_equal(a, b) for a, b in zip(made, same, strict=True))


@pytest.mark.slow  # imports diffusers, a few seconds
def test_an_unusable_checkpoint_fails_for_good_without_loading_again(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(weights, broken)
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    loads: list[str] = []
    real = ltx.load_pipeline
    monkeypatch.setattr(ltx, "load_pipeline", lambda *a, **kw: loads.append(a[0]) or real(*a, **kw))
    engine = plain_engine(broken)
    for _ in range(2):
        with pytest.raises(Unavailable, match="could not be loaded from") as failed:
            list(engine.render(job(), lambda _: None))
        assert not failed.value.retryable
    assert loads == [str(broken)], "the second task is told at once"


@pytest.mark.slow  # imports torch and diffusers, a few seconds
def test_offload_that_cannot_be_set_up_fails_for_good_before_loading(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    loads: list[str] = []
    monkeypatch.setattr(ltx, "load_pipeline", lambda *a, **kw: loads.append(a[0]))
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if not installed
    engine = LtxEngine(LtxConfig(weights=str(weights), device="cuda", offload="model"))
    for _ in range(2):
        with pytest.raises(Unavailable, match="needs accelerate") as failed:
            list(engine.render(job(), lambda _: None))
        assert not failed.value.retryable
    assert loads == [], "no weights read for a placement that cannot work"


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_placement_that_fails_after_loading_is_not_loaded_again(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real = ltx.load_pipeline
    monkeypatch.setattr(ltx, "load_pipeline", lambda *a, **kw: loads.append(a[0]) or real(*a, **kw))

    def no_room(*args, **kwargs) -> None:
        raise RuntimeError("group offloading needs a CUDA stream")

    monkeypatch.setattr(LtxEngine, "_place", no_room)
    engine = plain_engine(weights)
    for _ in range(2):
        with pytest.raises(Unavailable, match=r"could not be set up on cpu.*CUDA stream"):
            list(engine.render(job(), lambda _: None))
    assert len(loads) == 1


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_fp8_storage_keeps_the_transformer_in_float8_and_renders(weights: Path) -> None:
    import torch

    engine = plain_engine(weights, fp8=True)
    frames = list(engine.render(job(), lambda _: None))
    assert len(frames) == 9 and frames[0].shape == (H, W, 3)
    stored = {p.dtype for p in engine.pipeline().transformer.transformer_blocks.parameters()}
    assert torch.float8_e4m3fn in stored


def original_transformer_keys(folder: Path) -> dict:
    """The tiny transformer's weights named as LTX-Video's own single files name them."""
    from safetensors.torch import load_file

    state = load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    renames = {
        "proj_in": "patchify_proj",
        "time_embed": "adaln_single",
        "norm_q": "q_norm",
        "norm_k": "k_norm",
    }
    original = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        original[f"model.diffusion_model.{key}"] = value
    return original


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_single_file_checkpoint_loads_with_its_configs_folder(
    weights: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    single = tmp_path / "ltxv-2b-0.9.6-distilled-04-25.safetensors"
    save_file(original_transformer_keys(weights), single)
    loaded = plain_engine(single, config=str(weights))
    _, variant = loaded.loaded()
    assert (variant.size, variant.version, variant.distilled) == ("2B", "0.9.6", True)
    assert loaded.profile(None, variant).step_count == 2, "the operator's override wins"
    made = list(loaded.render(job(seed=5), lambda _: None))
    folder = plain_engine(weights, distilled=True)  # the same recipe, from the folder
    same = list(folder.render(job(seed=5), lambda _: None))
    assert all(np.array_equal(a, b) for a, b in zip(made, same, strict=True)), "the same weights"

    alone = plain_engine(single)  # no configs folder, none cached: said, not downloaded
    with pytest.raises(Unavailable, match="REELGATE_LTX_CONFIG") as failed:
        alone.pipeline()
    assert "Lightricks/LTX-Video-0.9.5" in failed.value.message and not failed.value.retryable
    not_ltx = tmp_path / "other.safetensors"
    save_file({"weight": __import__("torch").zeros(2)}, not_ltx)
    with pytest.raises(Unavailable, match="holds no LTX-Video transformer"):
        plain_engine(not_ltx, config=str(weights)).pipeline()


def test_each_checkpoint_gets_its_official_recipe_and_models_their_overrides(
    tmp_path: Path,
) -> None:
    from reelgate.engines.ltx_recipes import DISTILLED_TIMESTEPS, recipe
    from reelgate.engines.ltx_weights import Variant, variant_from

    distilled = recipe(Variant("13B", "0.9.8", distilled=True)).call_arguments()
    assert distilled["guidance_scale"] == 1.0 and distilled["num_inference_steps"] == 8
    assert distilled["timesteps"] == pytest.approx([1000 * s for s in DISTILLED_TIMESTEPS])
    assert distilled["timesteps"][-1] == pytest.approx(421.9)
    dev = recipe(Variant("2B", "0.9.6")).call_arguments()
    assert (dev["guidance_scale"], dev["guidance_rescale"]) == (3.0, 0.7)
    assert (dev["decode_timestep"], dev["decode_noise_scale"]) == (0.05, 0.025)
    assert "timesteps" not in dev and recipe(Variant("13B", "0.9.7")).steps == 30
    assert "multi_scale" not in dev, "the engine's, not the pipeline's"
    assert (
        recipe(Variant("13B", "0.9.7")).multi_scale
        and recipe(Variant("2B", "0.9.8", True)).multi_scale
    )
    assert not recipe(Variant("2B", "0.9.6")).multi_scale
    fast_refine = recipe(Variant("13B", "0.9.8", distilled=True))
    assert fast_refine.refine_step_count == 3, "0.9094, 0.725, 0.4219: the official second pass"
    assert variant_from("ltxv-13b-0.9.8-distilled.safetensors", 48, "0.9.7") == Variant(
        "13B", "0.9.8", True
    )
    assert variant_from("LTX-Video", 28, "0.9.0") == Variant("2B", "0.9.0", False)

    settings = Settings(
        data_dir=tmp_path,
        ltx_weights="dev",
        ltx_model_weights={"ray-flash-2": "distilled"},
        ltx_profiles={"ray-2": {"steps": 50}},
    )
    engine = ltx.from_settings(settings, EngineServices())
    assert engine is not None
    assert [engine.weights_for(m) for m in ("ray-2", "ray-flash-2", "photon-1")] == [
        "dev",
        "distilled",
        "dev",
    ]
    fast = Variant("2B", "0.9.8", distilled=True)
    assert engine.profile("ray-flash-2", fast).timesteps == DISTILLED_TIMESTEPS, "unmapped"
    assert engine.profile("ray-2", fast).step_count == 50, "steps replace the timesteps"
    with pytest.raises(ValueError, match="unknown LTX-Video profile settings stpes"):
        LtxConfig(weights="w", profiles={"ray-2": {"stpes": 4}})


def test_renders_beyond_the_budget_are_refused_before_they_start(tmp_path: Path) -> None:
    engine = LtxEngine(LtxConfig(weights="unused"))
    engine.check_job(job(n=121, width=1920, height=1088))  # 1080p, 5 s
    engine.check_job(job(n=217, width=1280, height=704))  # 720p, 9 s
    with pytest.raises(InvalidInput, match="the ltx engine renders at most") as refused:
        engine.check_job(job(n=217, width=1920, height=1088))
    assert "REELGATE_LTX_MAX_PIXEL_FRAMES" in refused.value.message
    with pytest.raises(InvalidInput, match="3840x2176 x 121 frames"):
        engine.check_job(job(n=121, width=3840, height=2160))  # padded onto the grid
    extend = job(n=121, width=1920, height=1088, source_video=tmp_path / "source.mp4")
    engine.check_job(extend)  # the default leaves room for an extension's source frames
    tight = LtxEngine(LtxConfig(weights="unused", max_pixel_frames=1920 * 1088 * 121))
    tight.check_job(job(n=121, width=1920, height=1088))
    with pytest.raises(InvalidInput, match="x 137 frames"):
        tight.check_job(extend)  # the source's frames are rendered too
    with pytest.raises(InvalidInput, match="x 129 frames"):
        tight.check_job(job(n=121, width=1920, height=1088, loop=True))  # and a loop's start
    LtxEngine(LtxConfig(weights="unused", max_pixel_frames=0)).check_job(extend)


@contextmanager
def ltx_app(tmp_path: Path, **settings: Any) -> Iterator[tuple[Any, Any, Any, dict[str, Any]]]:
    """An app with `ray-2` on the ltx engine (weights never loaded, no
    workers: what is accepted stays queued), a token's owner, an SDK client
    for it, and `/reelgate/v1/models` by model name."""
    from reelgate.testing import in_process, luma_sdk

    with in_process(
        tmp_path,
        workers=0,
        ltx_weights=str(tmp_path / "never-loaded"),
        model_engines={"ray-2": "ltx"},
        **settings,
    ) as app:
        owner, secret = app.runtime.tokens.create("ltx")
        with app.http(secret) as client:
            models = {m["model"]: m for m in client.get("/reelgate/v1/models").json()["models"]}
        yield app, owner, luma_sdk(app, secret), models


def test_sizes_beyond_the_budget_are_refused_when_asked_for_not_in_the_worker(
    tmp_path: Path,
) -> None:
    """4k, 1080p for 9 s, or 1080p at 21:9 would run out of the budget (and
    of memory) in the worker: they are refused with a 400 naming the engine,
    nothing queued, and `/reelgate/v1/models` does not offer 4k."""
    import lumaai

    with ltx_app(tmp_path) as (app, owner, luma, models):
        assert models["ray-2"]["engine"] == "ltx"
        assert models["ray-2"]["resolutions"] == ["540p", "720p", "1080p"], "no 4k"
        assert models["ray-2"]["durations"] == ["5s", "9s"]

        refusals = {
            "resolution 4k (it supports 540p, 720p, 1080p)": {"resolution": "4k"},
            "1080p at 16:9 for 9s here: it renders at most": {
                "resolution": "1080p",
                "duration": "9s",
            },
            "1080p at 21:9 for 5s here": {"resolution": "1080p", "aspect_ratio": "21:9"},
        }
        for reason, sizes in refusals.items():
            with pytest.raises(lumaai.BadRequestError) as refused:
                luma.generations.create(model="ray-2", prompt="a harbour at dawn", **sizes)
            assert f"the ltx engine does not support {reason}" in str(refused.value), sizes
        assert app.runtime.tasks.list_owned(owner.id, 10, 0)[1] == 0, "nothing queued"
        fits = [
            luma.generations.create(model="ray-2", prompt="a harbour", resolution="1080p"),
            luma.generations.create(
                model="ray-2", prompt="a harbour", resolution="720p", duration="9s", loop=True
            ),
        ]
        assert [g.state for g in fits] == ["queued", "queued"]


def test_conditioning_images_get_the_official_h264_round_trip() -> None:
    from reelgate.engines.ltx_recipes import crf_round_trip

    image = textured_image(W, H, seed=2)
    trip = crf_round_trip(image)
    assert trip.shape == image.shape and not np.array_equal(trip, image)
    assert psnr(trip, image) > 20, "compressed, not destroyed"
    assert crf_round_trip(image, 0) is image


@pytest.mark.slow  # imports diffusers, a few seconds
def test_start_and_end_images_are_prepared_as_official_inference_does() -> None:
    start, end = textured_image(W, H, seed=1), textured_image(W, H, seed=2)
    engine = LtxEngine(LtxConfig(weights="unused"))
    for condition, image in zip(
        engine.conditions(job(start_image=start, end_image=end))[0], (start, end), strict=True
    ):
        prepared = np.asarray(condition.image)
        assert not np.array_equal(prepared, image) and psnr(prepared, image) > 20
    raw = LtxEngine(LtxConfig(weights="unused", image_crf=0))
    assert np.array_equal(np.asarray(raw.conditions(job(start_image=start))[0][0].image), start)


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_source_off_the_grid_is_padded_onto_it_and_cropped_back(
    engine: LtxEngine, tmp_path: Path
) -> None:
    """A 1280x720 video (720 is no multiple of 32) is extended at its own
    size, as the official inference does: padded to 1280x736, cropped back.
    Here 80x40, padded to 96x64."""
    width, height = 80, 40
    source = tmp_path / "source.mp4"
    clip(source, width, height, 12)
    spy, pipe = recorded(engine, extend_frames=17)
    extend = job(n=9, width=width, height=height, source_video=source)
    frames = list(spy.render(extend, lambda _: None))
    assert len(frames) == 9 and {f.shape for f in frames} == {(height, width, 3)}
    (call,) = pipe.calls
    assert (call["width"], call["height"], call["num_frames"]) == (96, 64, 9 + 9 + 7)
    (video,) = call["conditions"]
    assert len(video.video) == 9, "12 frames of the source: the 8k+1 closest to its end"
    padded = np.asarray(video.video[0])
    assert padded.shape == (64, 96, 3) and padded[:12].max() == 0 and padded[-12:].max() == 0
    assert padded[12:52, 8:88].mean() > 20, "the source, centred"


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_loop_from_text_alone_starts_and_ends_on_its_opening_frame(engine: LtxEngine) -> None:
    spy, pipe = recorded(engine, image_crf=0)
    steps: list[float] = []
    frames = list(spy.render(job(n=9, loop=True), steps.append))
    assert len(frames) == 9
    opening, video = pipe.calls
    assert opening["num_frames"] == 1 and opening["conditions"] is None
    first, last = video["conditions"]
    assert (first.frame_index, last.frame_index) == (0, 9), "the frame after the last"
    assert video["num_frames"] == 17
    assert np.array_equal(np.asarray(first.image), np.asarray(last.image))
    assert steps == sorted(steps) and steps[-1] == 1.0


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_the_pipeline_runs_the_recipe_of_the_checkpoint_that_serves_the_model(
    engine: LtxEngine,
) -> None:
    from reelgate.engines.ltx_weights import Variant

    spy, pipe = recorded(engine, overrides={}, profiles={"ray-2": {"guidance": 4.0}})
    key = spy.weights_for(None)
    spy._pipelines[key] = (pipe, Variant("2B", "0.9.8", distilled=True))
    steps: list[float] = []
    list(spy.render(job(model="ray-flash-2"), steps.append))
    call = pipe.calls[-1]
    assert call["num_inference_steps"] == 8 and len(call["timesteps"]) == 8
    assert (call["guidance_scale"], call["decode_noise_scale"]) == (1.0, 0.025)
    assert len([s for s in steps if s < 1.0]) == 8
    spy._pipelines[key] = (pipe, Variant("2B", "0.9.6"))
    list(spy.render(job(model="ray-2"), lambda _: None))
    call = pipe.calls[-1]
    assert (call["guidance_scale"], call["guidance_rescale"]) == (4.0, 0.7)
    assert "timesteps" not in call and call["num_inference_steps"] == 40


# Seams, sources of real sizes, multi-scale, speed


class Faithful(Recording):
    """The tiny pipeline, called as the engine calls it (so diffusers checks
    every argument), its frames then drawn as a trained model draws them: the
    scene pans steadily, one width over the clip, and stands exactly at its
    last image condition at that condition's frame. The tiny random model
    keeps its keyframes no better than noise, so the seam is judged on what
    a model that honours them shows."""

    def __call__(self, **kwargs):
        result = super().__call__(**kwargs)
        key = [c for c in kwargs["conditions"] if c.image is not None][-1]
        image = np.asarray(key.image).astype(np.float32) / 255
        width, at = image.shape[1], key.frame_index
        result.frames = [
            np.stack(
                [
                    np.roll(image, round((i - at) * width / at), axis=1)
                    for i in range(kwargs["num_frames"])
                ]
            )
        ]
        return result


def differences(frames: list[np.ndarray]) -> list[float]:
    return [
        float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_clip_leads_into_the_next_one_without_showing_a_frame_twice(
    engine: LtxEngine,
) -> None:
    """A reverse extend: the worker plays the next video right after the
    clip, so the clip must end one step before that video's first frame, not
    on it (which shows it twice, a visible stall)."""
    pipe = Faithful(engine.pipeline())
    faithful = sharing(engine, pipe, image_crf=0)
    target = textured_image(W, H, seed=7)
    following = [np.roll(target, 7 * j, axis=1) for j in range(9)]  # the next video
    clip_ = list(faithful.render(job(n=9, end_image=target, end_image_follows=True), lambda _: 0))
    assert len(clip_) == 9, "the frame count asked for"
    (call,) = pipe.calls
    assert call["num_frames"] == 17 and call["conditions"][-1].frame_index == 9
    steps = differences(clip_)
    (seam,) = differences([clip_[-1], following[0]])
    assert seam > 0.5 * min(steps), "the next video's first frame is not shown twice"
    assert seam < 2 * max(steps), "and the motion runs on across the seam"

    own = list(faithful.render(job(n=9, end_image=target), lambda _: 0))
    assert np.array_equal(own[-1], target), "a clip's own end image is its last frame"


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_loop_wraps_around_without_showing_its_first_frame_twice(engine: LtxEngine) -> None:
    pipe = Faithful(engine.pipeline())
    faithful = sharing(engine, pipe, image_crf=0)
    start = textured_image(W, H, seed=8)
    loop = list(faithful.render(job(n=9, start_image=start, loop=True), lambda _: 0))
    assert len(loop) == 9 and np.array_equal(loop[0], start)
    steps = differences(loop)
    (wrap,) = differences([loop[-1], loop[0]])
    assert 0.5 * min(steps) < wrap < 2 * max(steps)


@pytest.mark.slow  # a 1280x720 clip through the tiny model, a few seconds
def test_a_720p_source_is_extended_at_its_own_size(engine: LtxEngine, tmp_path: Path) -> None:
    """720 is no multiple of 32: the render runs at 1280x736 (decoded by the
    timestep-conditioned VAE) and comes back at exactly 1280x720."""
    width, height = 1280, 720
    source = tmp_path / "source.mp4"
    frames = [np.roll(textured_image(width, height, seed=2), 9 * i, axis=1) for i in range(9)]
    encode_mp4(iter(frames), source, width=width, height=height)
    spy, pipe = recorded(engine, extend_frames=1)  # 9 frames rendered: quick enough
    extended = list(
        spy.render(job(n=1, width=width, height=height, source_video=source), lambda _: 0)
    )
    assert len(extended) == 1 and extended[0].shape == (height, width, 3)
    (call,) = pipe.calls
    assert (call["width"], call["height"], call["num_frames"]) == (1280, 736, 9)
    assert (call["decode_timestep"], call["decode_noise_scale"]) == (0.05, 0.025)
    (video,) = call["conditions"]
    assert len(video.video) == 1 and np.asarray(video.video[0]).shape == (736, 1280, 3)


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_multi_scale_render_refines_the_upsampled_first_pass(
    engine: LtxEngine, upsampler_weights: dict[str, Path]
) -> None:
    """0.9.7 and 0.9.8's recipe: a first pass at 2/3 of the size, its latents
    doubled by the upsampler, the last 0.4 of the schedule at that size, and
    the frames brought to the size asked for."""
    overrides = {"steps": 5, "guidance": 3.0, "multi_scale": True}
    spy, pipe = recorded(engine, overrides=overrides, upsampler=str(upsampler_weights["model"]))
    ran: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    spy.latent_upsampler().register_forward_hook(
        lambda module, args, out: ran.append((tuple(args[0].shape), tuple(out.shape)))
    )
    steps: list[float] = []
    width, height = 96, 64
    start = textured_image(width, height, seed=3)
    frames = list(spy.render(job(n=9, width=width, height=height, start_image=start), steps.append))
    assert len(frames) == 9 and {f.shape for f in frames} == {(height, width, 3)}
    first, refine = pipe.calls
    assert (first["width"], first["height"], first["output_type"]) == (64, 32, "latent")
    assert first["num_inference_steps"] == 5 and "denoise_strength" not in first
    assert ran == [((1, 8, 2, 1, 2), (1, 8, 2, 2, 4))], "the latents doubled, once"
    assert (refine["width"], refine["height"], refine["output_type"]) == (128, 64, "np")
    assert tuple(refine["latents"].shape) == (1, 8, 2, 2, 4)
    assert int(5 * refine["denoise_strength"]) == 2, "the last 0.4 of the schedule"
    assert [c.frame_index for c in refine["conditions"]] == [0], "the same conditions"
    assert len([s for s in steps if s < 1.0]) == 5 + 2 and steps == sorted(steps)

    single, pipe = recorded(engine, overrides=overrides)  # no upsampler configured
    list(single.render(job(n=9, width=width, height=height), lambda _: 0))
    assert [(c["width"], c["output_type"]) for c in pipe.calls] == [(96, "np")], "one pass"


@pytest.mark.slow  # the tiny model, traced by torch.compile: a few seconds
def test_compiled_blocks_and_the_first_block_cache_still_render(
    weights: Path, tmp_path: Path
) -> None:
    import shutil

    import torch
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.hooks import HookRegistry

    deeper = tmp_path / "three-blocks"  # the cache needs a first and a last block
    shutil.copytree(weights, deeper)
    config = dict(LTXVideoTransformer3DModel.load_config(weights / "transformer"))
    torch.manual_seed(0)
    LTXVideoTransformer3DModel.from_config({**config, "num_layers": 3}).save_pretrained(
        deeper / "transformer"
    )
    fast = plain_engine(deeper, compile="eager", cache_threshold=0.05)
    frames = list(fast.render(job(n=9), lambda _: 0))
    assert len(frames) == 9 and {f.shape for f in frames} == {(H, W, 3)}
    transformer = fast.pipeline().transformer
    assert transformer.is_cache_enabled
    assert HookRegistry.check_if_exists_or_initialize(transformer.transformer_blocks[0])._hook_order
    assert all(block._compiled_call_impl is not None for block in transformer.transformer_blocks)


# Review fixes: short sources, upscale sizes, which checkpoint, memory, resets


def greys_clip(path: Path, greys: list[int]) -> None:
    """A clip whose frames are flat greys, `greys[i]` the i-th (each frame tells itself)."""
    encode_mp4((np.full((H, W, 3), g, np.uint8) for g in greys), path, width=W, height=H)


@pytest.mark.slow  # imports diffusers, a few seconds
@pytest.mark.parametrize(("count", "kept"), [(5, 1), (12, 9)])
def test_an_extension_of_a_short_source_continues_from_its_last_frame(
    tmp_path: Path, count: int, kept: int
) -> None:
    """A source shorter than the frames an extension is conditioned on gives
    the 8k+1 frames at its end, so the new clip follows its real last frame
    (the first ones would make it jump back in time)."""
    source = tmp_path / "source.mp4"
    greys = [20 * k for k in range(count)]  # brighter by the frame
    greys_clip(source, greys)
    engine = LtxEngine(LtxConfig(weights="unused", extend_frames=17))
    (condition,), skip, total = engine.conditions(job(source_video=source))
    shown = [float(np.asarray(image).mean()) for image in condition.video]
    assert skip == len(shown) == kept and (total - 1) % 8 == 0
    assert shown == pytest.approx(greys[-kept:], abs=4), "the source's last frames"


@pytest.mark.slow  # a server in process, over a second
def test_an_upscale_to_4k_is_accepted_although_renders_from_scratch_are_held_to_the_budget(
    tmp_path: Path,
) -> None:
    """The budget holds what the model renders from scratch; an upscale runs
    the source through the VAE and the upsampler a few seconds at a time, so
    1080p goes to 4k: accepted at create, listed by /reelgate/v1/models, and
    let through by the worker's check, while a 4k video is still refused."""
    import lumaai

    from reelgate.domain.models import Asset, TaskResult
    from reelgate.testing import new_task

    upsampler = str(tmp_path / "never-loaded-either")
    with ltx_app(tmp_path, ltx_upsampler=upsampler) as (app, owner, luma, models):
        assert "upscale_video" in models["ray-2"]["generation_types"]
        assert models["ray-2"]["resolutions"] == ["540p", "720p", "1080p", "4k"]
        made = new_task(
            app.runtime.tasks, owner.id, engine="ltx", model="ltx-video", resolution="1080p"
        )
        claimed = app.runtime.tasks.claim(60, 3)
        assert claimed is not None and claimed.id == made.id and claimed.lease_owner
        asset = Asset(f"{made.id}/run/video.mp4", 1920, 1080, "video/mp4")
        assert app.runtime.tasks.complete(
            made.id, claimed.lease_owner, TaskResult(asset, asset, asset)
        )
        upscaled = luma.generations.upscale(made.id, resolution="4k")
        assert upscaled.state == "queued"
        assert app.runtime.tasks.get(upscaled.id).engine == "ltx"
        with pytest.raises(lumaai.BadRequestError) as refused:
            luma.generations.create(model="ray-2", prompt="a harbour", resolution="4k")
        assert "resolution 4k (it supports 540p, 720p, 1080p)" in str(refused.value)

    engine = LtxEngine(LtxConfig(weights="unused", upsampler="unused"))
    engine.check_job(
        job(n=121, width=3840, height=2160, source_video=tmp_path / "in.mp4", upscale=True)
    )
    with pytest.raises(InvalidInput, match="renders at most"):
        engine.check_job(job(n=121, width=3840, height=2160))


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_model_on_its_own_checkpoint_upsamples_without_loading_the_default_one(
    engine: LtxEngine, weights: Path, upsampler_weights: dict[str, Path], tmp_path: Path
) -> None:
    """Multi-scale renders and upscales need the latent upsampler and the
    requesting pipeline's VAE, nothing of the default checkpoint (which need
    not even load)."""
    own = LtxEngine(
        replace(
            engine.config,
            weights=str(tmp_path / "no-default-checkpoint"),
            model_weights={"ray-flash-2": str(weights)},
            overrides={"steps": 5, "guidance": 3.0, "multi_scale": True},
            upsampler=str(upsampler_weights["pipeline"]),
        )
    )
    pipe = Recording(engine.pipeline())
    own._pipelines[str(weights)] = (pipe, engine.loaded()[1])
    frames = list(own.render(job(n=9, width=96, height=64, model="ray-flash-2"), lambda _: 0))
    assert len(frames) == 9
    assert [c["output_type"] for c in pipe.calls] == ["latent", "np"], "multi-scale"
    source = tmp_path / "source.mp4"
    clip(source, W, H, 9)
    upscale = job(n=9, width=2 * W, height=2 * H, source_video=source, upscale=True)
    assert len(list(own.render(replace(upscale, model="ray-flash-2"), lambda _: 0))) == 9
    assert list(own._pipelines) == [str(weights)] and not own._failures, "the default not loaded"


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_out_of_memory_while_setting_up_is_tried_again_and_frees_what_was_loaded(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    import torch

    placed: list[weakref.ref] = []
    real = LtxEngine._place

    def short_of_memory(self, pipe, *args) -> None:
        placed.append(weakref.ref(pipe.transformer))
        if len(placed) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        real(self, pipe, *args)

    monkeypatch.setattr(LtxEngine, "_place", short_of_memory)
    engine = plain_engine(weights)
    with pytest.raises(Unavailable, match="ran out of memory setting up") as failed:
        engine.pipeline()
    assert failed.value.retryable, "the GPU may have room next time"
    assert "REELGATE_LTX_OFFLOAD" in failed.value.message
    assert failed.value.__cause__ is None and failed.value.__context__ is None
    del failed
    gc.collect()
    assert placed[0]() is None, "the half-placed pipeline is let go"
    assert engine.pipeline() is not None and len(placed) == 2, "loaded again, not cached"


@pytest.mark.slow  # imports diffusers, a few seconds
def test_an_unusable_checkpoint_raises_a_fresh_error_each_time(tmp_path: Path) -> None:
    """Only the reason is kept: raising one exception object again and again
    would lengthen its traceback and keep every failed attempt's frames."""
    broken = LtxEngine(LtxConfig(weights=str(tmp_path / "nowhere"), device="cpu"))
    errors = []
    for _ in range(3):
        with pytest.raises(Unavailable, match="could not be loaded") as failed:
            broken.pipeline()
        errors.append(failed.value)
    assert len({id(e) for e in errors}) == 3 and len({e.message for e in errors}) == 1
    assert not any(e.retryable for e in errors)


class Stopping(Recording):
    """The real pipeline, whose resets after a call the engine asks for are counted."""

    def __init__(self, pipe) -> None:
        super().__init__(pipe)
        self.resets = 0

    def maybe_free_model_hooks(self) -> None:
        self.resets += 1
        self.pipe.maybe_free_model_hooks()


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_render_stopped_part_way_leaves_the_pipeline_reset(engine: LtxEngine) -> None:
    """diffusers resets the first-block cache only when a call finishes; a
    lost lease or a cancel (raised from the progress callback) must not leave
    the next render this one's cached residuals."""
    pipe = Stopping(engine.pipeline())
    stopping = sharing(engine, pipe)

    class LeaseLost(Exception):
        pass

    def lose_the_lease(value: float) -> None:
        raise LeaseLost

    with pytest.raises(LeaseLost):
        list(stopping.render(job(), lose_the_lease))
    assert pipe.resets == 1
    list(stopping.render(job(), lambda _: None))
    assert pipe.resets == 1, "a call that finishes resets itself"


def test_a_refine_of_the_whole_schedule_is_refused_and_one_step_renders_in_one_pass(
    tmp_path: Path,
) -> None:
    """At a denoise strength of 1 diffusers starts the refine from noise,
    discarding the upsampled first pass."""
    from reelgate.engines.ltx_recipes import LtxProfile

    with pytest.raises(ValueError, match=r"refine_strength must be .*less than 1"):
        LtxConfig(weights="w", profiles={"ray-2": {"refine_strength": 1.0}})
    with pytest.raises(ValueError, match="refine_strength"):
        ltx.from_settings(
            Settings(
                data_dir=tmp_path,
                ltx_weights="w",
                ltx_profiles={"ray-2": {"multi_scale": True, "refine_strength": 1}},
            ),
            EngineServices(),
        )
    engine = LtxEngine(LtxConfig(weights="unused", upsampler="unused"))
    one_step = LtxProfile(steps=1, multi_scale=True)
    assert one_step.refine_denoise_strength == 1.0
    assert engine._multi_scale(None, one_step, 96, 64, 9) is None, "one pass, nothing loaded"


@pytest.mark.slow  # imports diffusers, a few seconds
def test_a_modify_reads_only_the_frames_it_keeps(tmp_path: Path) -> None:
    """A source longer than the job (which is checked against the budget for
    its own frame count) is not decoded, nor rendered, past it."""
    source = tmp_path / "source.mp4"
    greys_clip(source, [10 * k for k in range(25)])
    engine = LtxEngine(LtxConfig(weights="unused"))
    (video,), total = engine.modify_conditions(job(n=9, source_video=source, modify="flex_1"))
    assert total == 9 and len(video.video) == 9
    assert float(np.asarray(video.video[-1]).mean()) == pytest.approx(80, abs=4)


@pytest.mark.slow  # the tiny model: built once, about 3 s
def test_a_cached_snapshot_tells_its_variant_by_its_repo_name(
    weights: Path, tmp_path: Path
) -> None:
    """A Hugging Face cache snapshot is named by its hash; the repo's name
    (version, distilled) is further up its path."""
    import shutil

    from reelgate.engines.ltx_weights import Variant, load_pipeline

    snapshot = tmp_path / "models--Lightricks--LTX-Video-0.9.8-distilled" / "snapshots" / "3f2a9c"
    shutil.copytree(weights, snapshot)
    _, variant = load_pipeline(str(snapshot), None, __import__("torch").float32)
    assert variant == Variant("2B", "0.9.8", distilled=True)
