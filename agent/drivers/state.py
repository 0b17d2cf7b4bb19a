"""From a `Reading` to Kuat's MinerSample: state, power and where the power figure came from, capabilities.

Pure functions; the thresholds are the why of each state:
- rebooting: no hash rate and the mining process started less than `BOOT_WINDOW_S` ago (boards still coming up);
- sleeping: the firmware says so, or no hash rate with slow (or unreported) fans (stock firmware's sleep);
- degraded: hashing, but a hash board is missing/dead or hash rate below `DEGRADED_RATIO` of nominal; or no
  hash rate with fans racing long after start (stopped by a fault such as overheating);
- offline: the device did not answer (built by `offline_sample`).
"""

from __future__ import annotations

import math

from kuat import catalog
from kuat.wire import v1

from .parsers import Reading

BOOT_WINDOW_S = 240
DEGRADED_RATIO = 0.6  # hash rate below 60 % of nominal (at its power target) counts as degraded
SLOW_FAN_RPM = 2000  # a sleeping miner idles its fans (~1,200-1,600 rpm); hashing or booting ones run faster

UNKNOWN_CAPABILITIES = v1.Capabilities(sleep=False, reboot=True)  # a firmware without a record (pyasic decides)


def _family_capabilities(family: str) -> v1.Capabilities:
    """What a firmware family can be told (its record in agent.firmware); unknown families: reboot only."""
    from agent.firmware import FAMILIES  # lazy: the firmware records import this package's parsers

    fw = FAMILIES.get(family)
    return (fw.capabilities if fw is not None else UNKNOWN_CAPABILITIES).model_copy(deep=True)


def capabilities_for(family: str, model: str | None, presets: list[str] | None = None,
                     preset_watts: list[float] | None = None, *, gate: bool = True) -> v1.Capabilities:
    """What the firmware can be told. The power-target range is the model's, narrowed to the firmware's own presets
    where it lists their power (LuxOS: a target below the lowest profile is refused). With `gate`, a power target,
    sleep or board switching that no test verified on the wire is reported as absent (agent.firmware.matrix): the
    quota engine then never relies on it."""
    caps = _family_capabilities(family)
    if gate:
        _hide_unverified(family, caps)
    if presets:
        caps.presets = list(presets)
    spec = catalog.lookup(model)
    if caps.power_target and spec is not None:
        caps.power_min_w = round(spec.min_power_w)
        caps.power_max_w = round(spec.max_power_w)
    if caps.power_target and preset_watts:
        caps.power_min_w = max(caps.power_min_w or 0, math.ceil(min(preset_watts)))
        caps.power_max_w = max(caps.power_min_w, round(max(preset_watts)))
    return caps


def _hide_unverified(family: str, caps: v1.Capabilities) -> None:
    from agent.firmware import FAMILIES, matrix

    if family not in FAMILIES:
        return  # the long tail: pyasic's own claims (PyasicMiner), outside the matrix
    if caps.power_target and not matrix.is_verified(family, "power_target"):
        caps.power_target = False
        caps.power_target_reboots = False
    if caps.sleep and not matrix.is_verified(family, "sleep"):
        caps.sleep = False
    if caps.boards and not matrix.is_verified(family, "boards"):
        caps.boards = False


def miner_device_id(ip: str, mac: str | None) -> str:
    return mac.lower() if mac else f"ip-{ip}"


def decide_state(reading: Reading, nominal_ths: float | None, expected_boards: int | None) -> v1.MinerState:
    hashing = (reading.hashrate_ths or 0.0) > 0.0
    starting = reading.uptime_s is not None and reading.uptime_s < BOOT_WINDOW_S
    if not hashing:
        return _idle_state(reading, starting)
    low = bool(nominal_ths) and reading.hashrate_ths is not None and _below_expected(reading, nominal_ths or 0.0)
    if low and starting:
        return v1.MinerState.REBOOTING  # still ramping up after a boot or a wake
    if low or _boards_short(reading, expected_boards):
        return v1.MinerState.DEGRADED
    return v1.MinerState.MINING


def _idle_state(reading: Reading, starting: bool) -> v1.MinerState:
    """No hash rate: asleep (firmware says so, or slow fans), starting up, or stopped by a fault (fans racing)."""
    fans_slow = bool(reading.fans_rpm) and max(reading.fans_rpm) < SLOW_FAN_RPM
    if reading.sleeping or fans_slow:
        return v1.MinerState.SLEEPING
    if starting:
        return v1.MinerState.REBOOTING
    if not reading.fans_rpm:
        return v1.MinerState.SLEEPING
    return v1.MinerState.DEGRADED


def _below_expected(reading: Reading, nominal_ths: float) -> bool:
    ratio = _limit_ratio(reading, nominal_ths) or 1.0
    if reading.boards:  # boards switched off on purpose hash nothing and are no fault
        ratio *= sum(1 for b in reading.boards if b.enabled) / len(reading.boards)
    return (reading.hashrate_ths or 0.0) < DEGRADED_RATIO * ratio * nominal_ths


def _boards_short(reading: Reading, expected_boards: int | None) -> bool:
    if not reading.boards:
        return False
    if any(not b.ok for b in reading.boards):
        return True
    return expected_boards is not None and len(reading.boards) < expected_boards


def _limit_ratio(reading: Reading, nominal_ths: float) -> float | None:
    """Share of nominal hash rate the current power limit allows (a capped miner is not degraded)."""
    spec = next((s for s in catalog.MODELS.values() if s.nominal_ths == nominal_ths), None)
    if spec is None or reading.power_limit_w is None or reading.power_limit_w >= spec.nominal_w:
        return None
    return catalog.ratio_at_power(spec, reading.power_limit_w)


def board_errors(reading: Reading, expected_boards: int | None) -> list[str]:
    errors = [f"board {b.index}: {b.chips} of {b.expected_chips} chips" for b in reading.boards if _chips_short(b)]
    if reading.hashrate_ths and expected_boards and reading.boards and len(reading.boards) < expected_boards:
        errors.append(f"{len(reading.boards)} of {expected_boards} hash boards report")
    return errors


def _chips_short(board: v1.Board) -> bool:
    return board.chips is not None and board.expected_chips is not None and board.chips < board.expected_chips


def build_sample(
    ip: str, reading: Reading, family: str, *, device_id: str | None = None, include_capabilities: bool = True
) -> v1.MinerSample:
    """The MinerSample of a miner that answered."""
    spec = catalog.lookup(reading.model)
    nominal = spec.nominal_ths if spec else None
    expected_boards = spec.boards if spec else None
    state = decide_state(reading, nominal, expected_boards)
    power_w, source = _power(reading, spec, state)
    errors = list(reading.errors)
    errors.extend(e for e in board_errors(reading, expected_boards) if e not in errors)
    if state == v1.MinerState.DEGRADED and not reading.hashrate_ths:
        errors.append("not hashing although awake (fans at speed): fault, e.g. overheating")
    return v1.MinerSample(
        device_id=device_id or miner_device_id(ip, reading.mac),
        ip=ip,
        available=True,
        state=state,
        make=reading.make,
        model=reading.model,
        firmware=reading.firmware,
        serial=reading.serial,
        mac=reading.mac.lower() if reading.mac else None,
        hostname=reading.hostname,
        hashrate_ths=None if reading.hashrate_ths is None else round(reading.hashrate_ths, 4),
        nominal_ths=nominal,
        power_w=power_w,
        power_source=source,
        reported_power_w=reading.power_w,
        power_limit_w=reading.power_limit_w,
        temp_c=reading.temp_c,
        fans_rpm=reading.fans_rpm,
        boards=reading.boards,
        pools=reading.pools,
        errors=errors,
        capabilities=capabilities_for(family, reading.model, reading.presets, reading.preset_watts)
        if include_capabilities
        else v1.Capabilities(),
        uptime_s=reading.uptime_s,
    )


def _power(
    reading: Reading, spec: catalog.ModelSpec | None, state: v1.MinerState
) -> tuple[float | None, v1.PowerSource]:
    """Reported power when the firmware gives it; else hash rate x the model's J/TH (sleep: the model's sleep draw)."""
    if reading.power_w is not None:
        return reading.power_w, v1.PowerSource.REPORTED
    if spec is None or reading.hashrate_ths is None:
        return None, v1.PowerSource.NONE
    if state in (v1.MinerState.SLEEPING, v1.MinerState.REBOOTING) and reading.hashrate_ths == 0:
        return spec.sleep_w, v1.PowerSource.ESTIMATED
    return round(reading.hashrate_ths * spec.j_per_th, 1), v1.PowerSource.ESTIMATED


def offline_sample(
    ip: str, *, device_id: str | None = None, last: v1.MinerSample | None = None, error: str = ""
) -> v1.MinerSample:
    """An unreachable miner: keeps what is known about its identity, no figures."""
    sample = v1.MinerSample(
        device_id=device_id or (last.device_id if last else f"ip-{ip}"),
        ip=ip,
        available=False,
        state=v1.MinerState.OFFLINE,
        errors=[error] if error else [],
    )
    if last is not None:
        for name in ("make", "model", "firmware", "serial", "mac", "hostname", "nominal_ths", "capabilities"):
            setattr(sample, name, getattr(last, name))
    return sample


def apply_outlet_power(sample: v1.MinerSample, outlet: v1.OutletSample | None) -> v1.MinerSample:
    """Use the metered PDU outlet's figure as the miner's power (source `pdu`); keep the firmware's own figure.

    An outlet that is off means 0 W whatever the miner last said; an outlet without a power reading changes nothing.
    """
    if outlet is None:
        return sample
    if outlet.state == v1.OutletState.OFF:
        watts: float | None = 0.0
    else:
        watts = outlet.power_w
    if watts is None:
        return sample
    return sample.model_copy(update={"power_w": watts, "power_source": v1.PowerSource.PDU})
