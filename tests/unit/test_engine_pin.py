"""The VOICEVOX engine is pinned at one release wherever anchor names its image (the controller's defaults, the
chart and its presets, the plain manifests, Compose and its .env example, the kind script, README), and the CPU
stand-in reports that same version, so a cached sentence keyed by the engine's version means the same engine."""

from __future__ import annotations

import re
from pathlib import Path

from controller.settings import Settings
from voicevox_standin.server import VERSION

REPO = Path(__file__).resolve().parents[2]
PINNED = "0.25.2"
"""VOICEVOX's latest stable release (issue 23)."""
NAMED_IN = (
    "README.md", "compose.yaml", "compose.cpu.yaml", "compose/.env.example", "k8s/anchor.yaml", "k8s/kind/up.sh",
    "charts/anchor/values.yaml", "charts/anchor/presets/gpu.yaml", "charts/anchor/presets/cpu.yaml",
    "charts/anchor/README.md",
)  # fmt: skip
IMAGE = re.compile(r"voicevox/voicevox_engine:(?:nvidia|cpu)-(\d+\.\d+\.\d+)")


def test_every_engine_image_anchor_names_is_the_pinned_release() -> None:
    found = {name: IMAGE.findall((REPO / name).read_text(encoding="utf-8")) for name in NAMED_IN}
    assert all(found.values()), {name: tags for name, tags in found.items() if not tags}
    assert {name: sorted(set(tags)) for name, tags in found.items()} == {name: [PINNED] for name in NAMED_IN}
    defaults = Settings()
    assert IMAGE.findall(f"{defaults.engine_gpu_image} {defaults.engine_cpu_image}") == [PINNED, PINNED]


def test_the_stand_in_reports_the_pinned_release() -> None:
    assert VERSION.split("+", 1)[0] == PINNED and VERSION.endswith("+anchor-standin")
