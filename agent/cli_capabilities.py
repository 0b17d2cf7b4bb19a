"""`kuat agent capabilities [HOST]`: the capability matrix (docs/capabilities.md), or what one miner can be told.

Without HOST: every firmware family and model with its controls and whether each was verified on the wire.
With HOST: the miner is identified and read, and its matrix row is printed beside the capabilities it reports
(which hide what no test verified: that is what the quota engine sees).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from agent.cli_common import check_host, miner_port_hint, print_json, print_table, run_device
from agent.drivers import open_miner
from agent.firmware import matrix


def _row_dict(row: matrix.Row) -> dict[str, Any]:
    data = asdict(row)
    data["evidence"] = {k: list(v) for k, v in row.evidence.items()}
    data["recordings"] = list(row.recordings)
    return data


def _mark(row: matrix.Row, control: str, exists: bool) -> str:
    if not exists:
        return "-"
    return "verified" if control in row.evidence else "claimed"


def _table(rows: list[matrix.Row]) -> None:
    header = ("firmware", "model", "power target", "sleep", "boards", "reboot", "change reboots", "version")
    body = [
        (r.family, r.model, r.power_target if r.power_target == "no"
         else f"{r.power_target} {_mark(r, 'power_target', True)}",
         _mark(r, "sleep", r.sleep), _mark(r, "boards", r.boards), _mark(r, "reboot", r.reboot),
         "yes" if r.change_reboots else "no", r.firmware_version)
        for r in rows
    ]
    print_table([header, *body])


async def _host_report(host: str, port_offset: int, timeout_s: float) -> dict[str, Any]:
    driver = await open_miner(host, port_offset=port_offset, timeout=timeout_s)
    sample = await driver.read()
    family = getattr(driver, "family", "pyasic")
    rows = [r for r in matrix.rows() if r.family == family and r.model == sample.model]
    return {
        "ip": host, "family": family, "make": sample.make, "model": sample.model, "firmware": sample.firmware,
        "reported": sample.capabilities.model_dump(mode="json"),
        "matrix": _row_dict(rows[0]) if rows else None,
    }


@click.command()
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--port-offset", type=int, default=0, show_default=True, help="Simulated miners on 4028+N / 80+N.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Per request, seconds.")
def capabilities(host: str | None, as_json: bool, port_offset: int, timeout: float) -> None:
    """Which controls each firmware and model has, and whether a test verified them on the wire; with HOST,
    identify that miner and show its row and what it reports to the controller."""
    if host is None:
        rows = matrix.rows()
        if as_json:
            print_json([_row_dict(r) for r in rows])
        else:
            _table(rows)
        return
    host = check_host(host, port_hint=miner_port_hint)
    report = run_device(_host_report(host, port_offset, timeout), host, limit_s=timeout * 6)
    if as_json:
        print_json(report)
        return
    row = report["matrix"]
    click.echo(f"{host}: {report['make']} {report['model']} ({report['family']}, {report['firmware']})")
    reported = report["reported"]
    for control in ("power_target", "sleep", "reboot"):
        proof = (row or {}).get("evidence", {}).get(control)
        where = f"verified by {proof[0]}" if proof else "not verified on the wire"
        click.echo(f"  {control:<13} reported {str(reported.get(control)).lower():<5}  {where}")
    if reported.get("power_target"):
        click.echo(f"  power range   {reported.get('power_min_w')}-{reported.get('power_max_w')} W"
                   f"{'  (a change reboots the miner)' if reported.get('power_target_reboots') else ''}")
