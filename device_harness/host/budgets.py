"""Device budgets emulated on the host: how many cores a run may use and how much memory.

A budget pins the runner to ``cores`` cores (fewer if the host has fewer; the run
records the shortfall) with as many runtime threads, and stops it with a clear error
once its peak RSS passes ``max_rss_mb``. It answers "would this fit"; it does not slow
the host's cores down to a board's, so step times stay the host's.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgetune.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    name: str
    cores: int
    max_rss_mb: float
    description: str


# max_rss_mb is what one process may take: total RAM less what the OS and the rest keep.
BUDGETS = {b.name: b for b in (
    Budget("pi4-2gb", 4, 1500, "Raspberry Pi 4 Model B, 2 GB: 4x Cortex-A72; ~500 MB kept by Raspberry Pi OS Lite "
                               "and the page cache"),
    Budget("pi4-1gb", 4, 600, "Raspberry Pi 4 Model B, 1 GB: 4x Cortex-A72; ~400 MB kept by the OS"),
    Budget("phone-2gb", 4, 500, "an Android phone with 2 GB: Android keeps ~1.2 GB and the low-memory killer ends "
                                "a background app well before the rest is used (assumed: 4 big cores, 500 MB)"),
)}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise ConfigError(f"unknown budget {name!r}; choose one of {sorted(BUDGETS)}") from None
