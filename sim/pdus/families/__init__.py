"""Per-family MIB tables of the simulated PDUs, by the family names site files use."""

from __future__ import annotations

from functools import lru_cache

from sim.pdus.families import apc_rpdu2, raritan_px2, sentry4
from sim.pdus.mib import Family, Layout, build_layout

FAMILIES: dict[str, Family] = {f.name: f for f in (apc_rpdu2.FAMILY, raritan_px2.FAMILY, sentry4.FAMILY)}


@lru_cache(maxsize=64)
def layout_for(family: str, n_outlets: int) -> Layout:
    """The sorted instance list of a PDU shape; PDUs of the same family and size share it."""
    if family not in FAMILIES:
        raise ValueError(f"no simulated PDU family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    return build_layout(FAMILIES[family], n_outlets)
