"""Example configs shipped with doctor (package data), e.g. for ``make demo`` and the README."""

from __future__ import annotations

from pathlib import Path

SEED_MIRROR = Path(__file__).with_name("seed-mirror.conf")
"""A hand-made ``location = /mirror_api_gw`` in a realistic callback server: what doctor flags."""
