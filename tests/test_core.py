"""Neutral sizes, prompt enhancement and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.config import Settings, load_settings
from reelgate.core.enhance import DetailEnhancer, NoEnhancer, load_enhancer
from reelgate.domain.models import ASPECT_RATIOS, RESOLUTIONS, frame_count, frame_size


@pytest.mark.parametrize("ratio", list(ASPECT_RATIOS))
@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_sizes_are_on_the_32_pixel_grid_and_keep_the_ratio(ratio: str, resolution: str) -> None:
    w, h = frame_size(ratio, resolution)
    assert w % 32 == 0 and h % 32 == 0
    a, b = ASPECT_RATIOS[ratio]
    assert abs(w / h - a / b) / (a / b) < 0.06
    assert abs(min(w, h) - RESOLUTIONS[resolution]) <= 16


def test_known_sizes_and_frame_counts() -> None:
    assert frame_size("16:9", "720p") == (1280, 704)
    assert frame_size("9:16", "1080p") == (1088, 1920)
    assert frame_count("5s") == 121 and frame_count("9s") == 217
    assert all((frame_count(d) - 1) % 8 == 0 for d in ("5s", "9s"))


def test_detail_enhancer_is_deterministic_and_adds_detail() -> None:
    e = DetailEnhancer()
    out = e.enhance("a fox in the snow")
    assert out == e.enhance("a fox in the snow")
    assert out.startswith("a fox in the snow. ") and len(out) > 40
    assert e.enhance("a city at night") != out
    assert isinstance(load_enhancer("none"), NoEnhancer)
    assert isinstance(load_enhancer("reelgate.core.enhance:DetailEnhancer"), DetailEnhancer)
    with pytest.raises(ValueError):
        load_enhancer("nonsense")


def test_settings_from_environment_toml_and_overrides(tmp_path: Path, monkeypatch) -> None:
    toml = tmp_path / "reelgate.toml"
    toml.write_text('port = 9001\nworkers = 4\npublic_base_url = "https://videos.example.com/"\n')
    monkeypatch.setenv("REELGATE_CONFIG", str(toml))
    monkeypatch.setenv("REELGATE_WORKERS", "2")
    settings = load_settings(port=None, data_dir=tmp_path / "d")
    assert settings.port == 9001  # from the file
    assert settings.workers == 2  # environment wins over the file
    assert settings.resolved_public_base_url == "https://videos.example.com"
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert load_settings(workers=7).workers == 7  # explicit options win
    monkeypatch.setenv("REELGATE_DEFAULT_RESOLUTION", "480p")
    with pytest.raises(ValueError):
        Settings()


def test_models_route_to_engines_by_configuration(tmp_path: Path) -> None:
    from reelgate.core.service import TaskService
    from reelgate.domain.errors import InvalidRequest
    from reelgate.engines.preview import PreviewEngine

    settings = load_settings(
        data_dir=tmp_path, model_engines={"ray-2": "preview", "ray-flash-2": "ltx"}
    )
    service = TaskService(settings, tasks=None, engines={"preview": PreviewEngine()})
    assert service.route("ray-2").name == "preview"
    assert service.route(None).name == "preview"  # unmapped: the default engine
    with pytest.raises(InvalidRequest, match="ltx"):
        service.route("ray-flash-2")
