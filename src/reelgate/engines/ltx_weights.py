"""Loading LTX-Video checkpoints for the ltx engine, and telling which one it is.

Two formats load, never downloading anything:

- a diffusers folder (`save_pretrained`, or a repo id already in the offline
  Hugging Face cache): `LTXConditionPipeline.from_pretrained`;
- a single `.safetensors` file as LTX-Video publishes them (the 2B 0.9.6 and
  0.9.8 files, the 13B 0.9.7 and 0.9.8 files): its transformer (and its VAE,
  when the file holds one) are converted by diffusers' `from_single_file`,
  and everything a file does not hold (the configs, the scheduler, the T5
  text encoder and its tokenizer) comes from a diffusers folder of the same
  family: `REELGATE_LTX_CONFIG`, or else the repo diffusers names for that
  family (`Lightricks/LTX-Video-0.9.5` for 2B files, `-0.9.7-dev` for 13B
  ones) when it is already in the offline cache. Without one the load fails
  saying so: diffusers would otherwise try to download the configs.

The scheduler is set up for `LTXConditionPipeline`, which hands it its own
linear-quadratic timesteps (the official sampler): a checkpoint whose
scheduler shifts its sigmas (the LTX-Video repository's root, 0.9.0, has
`use_dynamic_shifting`, which would need a `mu` the pipeline never passes)
gets the same scheduler without shifting, so the sigmas it steps by are the
timesteps the transformer is told.

Anything that makes a checkpoint unusable is an `Unavailable` error (not
retried: another attempt would load the same files) naming the source and
what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelgate.domain.errors import Unavailable

SINGLE_FILE_SUFFIXES = (".safetensors",)

FAMILY_CONFIG_REPOS = {
    "0.9.0": "diffusers/LTX-Video-0.9.0",
    "0.9.1": "diffusers/LTX-Video-0.9.1",
    "0.9.5": "Lightricks/LTX-Video-0.9.5",
    "0.9.7": "Lightricks/LTX-Video-0.9.7-dev",
}
"""The diffusers folder diffusers itself pairs with each single-file family
(its `DIFFUSERS_DEFAULT_PIPELINE_PATHS`): the configs and the text encoder."""

LARGE_LAYERS = 48
"""Transformer blocks of the 13B model (the 2B has 28)."""


@dataclass(frozen=True)
class Variant:
    """Which LTX-Video a checkpoint is: its size, the release family its
    architecture belongs to (or the exact release its name gives), and
    whether it is a distilled model (from its name, or the setting)."""

    size: str = "2B"
    version: str = "0.9.5"
    distilled: bool = False

    def describe(self) -> str:
        return f"LTX-Video {self.size} {self.version} {'distilled' if self.distilled else 'dev'}"

    @property
    def multi_scale(self) -> bool:
        """Released with a multi-scale recipe and its latent upsampler (0.9.7 and later)."""
        return _version_key(self.version) >= (0, 9, 7)


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """What torch raises when an allocation fails (`torch.OutOfMemoryError`
    from torch 2.5 on; `torch.cuda.OutOfMemoryError`, the same class there)."""
    import torch

    kinds = (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError)
    return tuple({kind for kind in kinds if isinstance(kind, type)})


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


_VERSION_IN_NAME = re.compile(r"0\.9\.(\d+)")


def variant_from(name: str, layers: int, family: str, distilled: bool | None = None) -> Variant:
    """A variant from what the weights show (transformer blocks, the VAE's
    family) and what their name says (an exact release, "distilled")."""
    size = "13B" if layers >= LARGE_LAYERS else "2B"
    found = _VERSION_IN_NAME.findall(name)
    version = f"0.9.{found[-1]}" if found else family
    if size == "13B" and _version_key(version) < (0, 9, 7):
        version = "0.9.7"  # the first 13B release
    if distilled is None:
        distilled = "distill" in name.lower()
    return Variant(size=size, version=version, distilled=distilled)


def resolve_folder(source: str, what: str) -> Path:
    """A local folder, or the snapshot of a repo id in the offline cache."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if local.exists() or source.count("/") != 1:
        raise Unavailable(f"{what} {source!r} is neither a folder nor a cached repo id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:
        raise Unavailable(
            f"{what} {source!r} is not a local folder and not in the offline Hugging Face "
            f"cache (nothing is downloaded): {type(exc).__name__}"
        ) from exc


def load_pipeline(
    source: str, config_source: str | None, dtype: Any, distilled: bool | None = None
) -> tuple[Any, Variant]:
    """The pipeline a checkpoint makes, and its variant. Raises `Unavailable`."""
    path = Path(source).expanduser()
    try:
        if path.suffix in SINGLE_FILE_SUFFIXES or path.is_file():
            if not path.is_file():
                raise Unavailable(f"LTX-Video checkpoint file {source!r} does not exist")
            pipe, family = _from_single_file(path, config_source, dtype)
        else:
            pipe, family = _from_folder(resolve_folder(source, "LTX-Video weights"), dtype)
    except Unavailable as exc:
        raise Unavailable(f"LTX-Video weights could not be loaded: {exc.message}") from exc
    except Exception as exc:
        if isinstance(exc, out_of_memory_errors()):
            raise  # not the checkpoint's fault: the engine lets it be tried again
        raise Unavailable(
            f"LTX-Video weights could not be loaded from {source!r} (offline; nothing is "
            f"downloaded): {type(exc).__name__}: {exc}"
        ) from exc
    missing = [
        name
        for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
        if getattr(pipe, name, None) is None
    ]
    if missing:
        raise Unavailable(
            f"LTX-Video weights could not be loaded from {source!r}: the checkpoint has no "
            f"{', '.join(missing)}"
        )
    conform_scheduler(pipe)
    # The whole path: a cached snapshot's own name is only its hash
    # (.../models--Lightricks--LTX-Video-0.9.8-distilled/snapshots/<hash>).
    variant = variant_from(
        str(path) if path.exists() else source,
        int(pipe.transformer.config.num_layers),
        family,
        distilled,
    )
    return pipe, variant


def _from_folder(folder: Path, dtype: Any) -> tuple[Any, str]:
    from diffusers import LTXConditionPipeline

    if not (folder / "model_index.json").is_file():
        raise Unavailable(
            f"{str(folder)!r} is not a diffusers LTX-Video folder (no model_index.json)"
        )
    # diffusers leaves from_pretrained unannotated; `unused-ignore`: without the
    # ltx extra installed, diffusers is Any (see [tool.mypy]) and nothing is ignored
    pipe = LTXConditionPipeline.from_pretrained(  # type: ignore[no-untyped-call, unused-ignore]
        str(folder), dtype=dtype, local_files_only=True
    )
    return pipe, vae_family(pipe.vae.config)


def vae_family(config: Any) -> str:
    """The release family a diffusers VAE config belongs to."""
    if not config.get("timestep_conditioning", False):
        return "0.9.0"
    if any("095" in str(kind) for kind in config.get("down_block_types", ())):
        return "0.9.5"
    return "0.9.1"


def _from_single_file(path: Path, config_source: str | None, dtype: Any) -> tuple[Any, str]:
    from diffusers import AutoencoderKLLTXVideo, LTXConditionPipeline, LTXVideoTransformer3DModel
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        keys = set(file.keys())
        conv_out = "vae.encoder.conv_out.conv.weight"
        wide_vae = conv_out in keys and file.get_slice(conv_out).get_shape()[1] == 2048
    if not keys & {"model.diffusion_model.patchify_proj.weight", "patchify_proj.weight"}:
        raise Unavailable(f"{str(path)!r} holds no LTX-Video transformer")
    has_vae = any(key.startswith("vae.") for key in keys)
    if any(key.endswith("transformer_blocks.47.scale_shift_table") for key in keys):
        family = "0.9.7"
    elif wide_vae:
        family = "0.9.5"
    elif "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight" in keys:
        family = "0.9.1"
    elif has_vae:
        family = "0.9.0"
    else:
        family = "0.9.5"  # a transformer alone: the 0.9.5 VAE's family
    if config_source:
        folder = resolve_folder(config_source, "REELGATE_LTX_CONFIG")
    else:
        try:
            folder = resolve_folder(FAMILY_CONFIG_REPOS[family], "the configs")
        except Unavailable as exc:
            raise Unavailable(
                f"the single file {path.name!r} needs a diffusers LTX-Video folder for its "
                "configs, T5 text encoder and tokenizer: set REELGATE_LTX_CONFIG to one "
                f"(for this {family} family file, {FAMILY_CONFIG_REPOS[family]!r}) or put "
                f"that repo in the offline Hugging Face cache ({exc.message})"
            ) from exc
    common = {"config": str(folder), "torch_dtype": dtype, "local_files_only": True}
    components: dict[str, Any] = {
        "transformer": LTXVideoTransformer3DModel.from_single_file(
            str(path), subfolder="transformer", **common
        )
    }
    if has_vae:
        components["vae"] = AutoencoderKLLTXVideo.from_single_file(
            str(path), subfolder="vae", **common
        )
    if not (folder / "model_index.json").is_file():
        raise Unavailable(
            f"the configs folder {str(folder)!r} is not a diffusers LTX-Video folder "
            "(no model_index.json)"
        )
    pipe = LTXConditionPipeline.from_pretrained(  # type: ignore[no-untyped-call, unused-ignore]
        str(folder), dtype=dtype, local_files_only=True, **components
    )
    return pipe, family if has_vae else vae_family(pipe.vae.config)


def conform_scheduler(pipe: Any) -> None:
    """Make the scheduler step by exactly the timesteps the pipeline passes.

    `LTXConditionPipeline` passes explicit timesteps (its linear-quadratic
    schedule, or a profile's) and tells the transformer those; the scheduler
    then derives its sigmas from them, shifting them if so configured. Any
    shift (dynamic, which also needs a `mu` the pipeline never passes, a
    fixed one, a terminal stretch, Karras or other respacing) would make it
    step by other sigmas than the model was told, so all are turned off."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    config = dict(pipe.scheduler.config)
    plain = {
        "use_dynamic_shifting": False,
        "shift": 1.0,
        "shift_terminal": None,
        "use_karras_sigmas": False,
        "use_exponential_sigmas": False,
        "use_beta_sigmas": False,
        "invert_sigmas": False,
    }
    if isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler) and all(
        config.get(key, value) == value for key, value in plain.items()
    ):
        return
    scheduler_class: Any = FlowMatchEulerDiscreteScheduler  # diffusers leaves it unannotated
    pipe.scheduler = scheduler_class.from_config({**config, **plain})
