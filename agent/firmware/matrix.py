"""The capability matrix: per firmware family, model and firmware version, which controls exist, whether a change
reboots the machine, and whether each was verified on the wire - measured, not claimed.

"Verified" comes from the tests, not from the records: `scripts/capabilities.py` collects every test marked
`@pytest.mark.verifies(family, control)` (simulator tests that drive the control through the agent and check the
machine's physics) and the recorded replies the parser tests read, and writes them to `agent/firmware/verified.py`
and `docs/capabilities.md` (tests/agent/test_capability_matrix.py fails when either differs from what the
script would write). `agent.drivers.state.capabilities_for` hides a power target or sleep that no test verified,
so the quota engine, which only sees the capabilities a miner reports, only uses controls the matrix marks
as working for that machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.firmware import FAMILIES, Firmware
from agent.firmware.verified import FIRMWARE_VERSIONS, RECORDINGS, VERIFIED
from kuat import catalog

CONTROLS = ("power_target", "sleep", "boards", "reboot", "outlet")
GATED = ("power_target", "sleep", "boards")  # what the allocator uses; hidden unless verified


@dataclass(frozen=True)
class Evidence:
    """What the tests proved (the checked-in `verified.py`, or what scripts/capabilities.py just collected)."""

    verified: dict[str, dict[str, tuple[str, ...]]]
    versions: dict[str, str]
    recordings: dict[str, tuple[str, ...]]


CHECKED_IN = Evidence(VERIFIED, FIRMWARE_VERSIONS, RECORDINGS)


def verified(family: str, control: str, ev: Evidence = CHECKED_IN) -> tuple[str, ...]:
    """The tests that verify `control` on `family` (empty: not verified on the wire)."""
    return ev.verified.get(family, {}).get(control, ())


def is_verified(family: str, control: str, ev: Evidence = CHECKED_IN) -> bool:
    return bool(verified(family, control, ev))


@dataclass(frozen=True)
class Row:
    family: str
    make: str
    model: str
    firmware_version: str
    power_target: str  # "no", or the range "1905-3100 W"
    presets: str
    sleep: bool
    boards: bool
    reboot: bool
    outlet: bool
    change_reboots: bool
    evidence: dict[str, tuple[str, ...]]  # control -> tests
    recordings: tuple[str, ...]


def _models(fw: Firmware) -> list[catalog.ModelSpec]:
    return sorted((m for m in catalog.MODELS.values() if m.make == fw.make), key=lambda m: m.key)


def rows(ev: Evidence = CHECKED_IN) -> list[Row]:
    from agent.drivers.state import capabilities_for

    out = []
    for fw in sorted(FAMILIES.values(), key=lambda f: f.name):
        for spec in _models(fw):
            claimed = fw.capabilities
            caps = capabilities_for(fw.name, spec.key, gate=False)
            target = f"{caps.power_min_w:.0f}-{caps.power_max_w:.0f} W" if caps.power_target else "no"
            out.append(Row(
                family=fw.name, make=fw.make or "?", model=spec.key,
                firmware_version=ev.versions.get(fw.name, "-"),
                power_target=target if claimed.power_target else "no",
                presets="profiles (per miner)" if claimed.presets is not None and fw.name == "luxos" else "-",
                sleep=claimed.sleep, boards=claimed.boards, reboot=claimed.reboot, outlet=True,
                change_reboots=claimed.power_target_reboots,
                evidence={c: verified(fw.name, c, ev) for c in CONTROLS if verified(fw.name, c, ev)},
                recordings=ev.recordings.get(fw.name, ()),
            ))
    return out


def _mark(exists: bool, family: str, control: str, ev: Evidence) -> str:
    if not exists:
        return "-"
    return "yes, verified" if is_verified(family, control, ev) else "claimed, not verified"


def render_markdown(ev: Evidence = CHECKED_IN) -> str:
    lines = [
        "# Capability matrix (generated: `python scripts/capabilities.py --write`; do not edit)",
        "",
        "Per firmware family and model: which controls exist, whether a change reboots the machine, and whether",
        "each was verified on the wire by a simulator test (listed below the table). \"claimed, not verified\"",
        "controls are hidden from the quota engine (the agent reports them as absent). Outlet control is the",
        "PDU's (any miner with `outlet` in the agent config), verified per PDU family in tests/agent/test_pdu_*.",
        "Firmware version: the one the simulator speaks and the tests ran against. Verification is per firmware",
        "family, on the models the simulated sites run (S19j Pro, S21, S19 XP, M30S, M50, M60, A1246); the",
        "power range is the model's, narrowed per miner to the firmware's own presets where it lists them.",
        "Boards: single hash boards switched off and on (`boards_on` setpoints); the quota engine plans k of B",
        "boards at full ratio only where this column says verified (docs/quota.md, board options).",
        "",
        "| firmware | make | model | firmware version | power target | presets | sleep | boards | reboot |"
        " change reboots |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows(ev):
        target = r.power_target
        if target != "no":
            target = f"{target} ({_mark(True, r.family, 'power_target', ev)})"
        lines.append(
            f"| {r.family} | {r.make} | {r.model} | {r.firmware_version} | {target} | {r.presets} | "
            f"{_mark(r.sleep, r.family, 'sleep', ev)} | {_mark(r.boards, r.family, 'boards', ev)} | "
            f"{_mark(r.reboot, r.family, 'reboot', ev)} | {'yes' if r.change_reboots else 'no'} |"
        )
    lines += ["", "## Evidence", ""]
    for fw in sorted(FAMILIES.values(), key=lambda f: f.name):
        lines.append(f"### {fw.name}")
        lines.append("")
        for control in CONTROLS:
            for test in verified(fw.name, control, ev):
                lines.append(f"- {control}: `{test}`")
        recs = ev.recordings.get(fw.name, ())
        lines.append(f"- reads checked on recorded replies: {', '.join(f'`{x}`' for x in recs) if recs else 'none'}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
