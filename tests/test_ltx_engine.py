"""The ltx engine with a tiny LTX-Video built from configs (no downloads):
saved with save_pretrained, loaded by the engine's real loader, and run for
every request shape on the CPU."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from reelgate.domain.errors import InvalidInput, Unavailable
from reelgate.engines.base import RenderJob
from reelgate.engines.ltx import LtxConfig, LtxEngine, LtxProfile
from reelgate.media.encode import encode_mp4
from reelgate.media.probe import probe_video
from reelgate.testing import textured_image

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


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    import transformers
    from diffusers import (
        AutoencoderKLLTXVideo,
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
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
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
        LtxConfig(
            weights=str(weights), device="cpu", default_profile=LtxProfile(steps=2, guidance=3.0)
        )
    )


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
    assert frame_indexes(engine, job(start_image=start, loop=True)) == [("image", 0), ("image", 8)]
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
    assert frame_indexes(engine, looped) == [("video", 0), ("image", 9 + 9 - 1)]


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
    with pytest.raises(Unavailable, match="could not be loaded"):
        list(broken.render(job(), lambda _: None))
    with pytest.raises(InvalidInput, match="multiples of 32"):
        broken.check_frames(100, 64, 9)
    with pytest.raises(InvalidInput, match="8k\\+1"):
        broken.check_frames(64, 64, 10)


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

    oom = LtxEngine(
        LtxConfig(weights=str(weights), device="cpu", default_profile=LtxProfile(steps=1))
    )
    pipe = oom.pipeline()

    class OutOfMemory:
        """Stands in for a GPU that has no memory left (none exists here)."""

        def __getattr__(self, name: str):
            return getattr(pipe, name)

        def __call__(self, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    oom._pipeline = OutOfMemory()
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
