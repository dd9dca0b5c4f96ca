"""Which engines exist: one line each.

An engine module exposes `from_settings(settings, services)`, which returns
the engine or None when the settings do not enable it. Modules are imported
only when the registry builds engines, so an engine's heavy dependencies
(torch for ltx) load only where that engine is configured.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from reelgate.engines.base import Engine, EngineFactory, EngineServices

if TYPE_CHECKING:
    from reelgate.config import Settings

ENGINES: dict[str, str] = {
    "preview": "reelgate.engines.preview",
    "ltx": "reelgate.engines.ltx",
    "luma": "reelgate.engines.luma",
}
"""Engine name -> the module that builds it."""


def build_engines(settings: Settings, services: EngineServices) -> dict[str, Engine]:
    """Every engine the settings enable, by name; the default engine must be one."""
    engines: dict[str, Engine] = {}
    for name, module in ENGINES.items():
        factory = cast(EngineFactory, importlib.import_module(module).from_settings)
        engine = factory(settings, services)
        if engine is not None:
            if engine.name != name:
                raise ValueError(f"{module} builds an engine named {engine.name!r}, not {name!r}")
            engines[name] = engine
    if settings.default_engine not in engines:
        raise ValueError(
            f"unknown engine {settings.default_engine!r}; available: {', '.join(engines)}"
        )
    return engines
