"""`kuat plan`: tomorrow's value-of-energy curve and bids from a running controller, results in, and the backtest.

Data goes to stdout (a table, or JSON with --json); logs and progress go to stderr; a bad input or an answer the
controller refused is one line on stderr and exit status 2. The curve and bids come from the controller's API
(`--url`, `--key`, or $KUAT_URL / $KUAT_API_KEY), because only the running controller knows the live fleet;
`kuat plan curve --fleet FILE` computes one offline from a fleet file instead.
"""

from __future__ import annotations

import json
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn

import click

log = logging.getLogger(__name__)

URL = click.option("--url", envvar="KUAT_URL", default="http://127.0.0.1:8080", show_default=True,
                   help="the controller ($KUAT_URL)")
KEY = click.option("--key", envvar="KUAT_API_KEY", default=None, help="an API key ($KUAT_API_KEY)")
JSON = click.option("--json", "as_json", is_flag=True, help="print JSON (the API's document) instead of a table")
DAY = click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None,
                   help="Astana day (default tomorrow)")


def fail(msg: str) -> NoReturn:
    click.echo(f"kuat plan: {msg}", err=True)
    sys.exit(2)


@click.group("plan")
def cli() -> None:
    """Day-ahead bids for the miners' KOREM auction: curve, bids, results in, backtest (docs/planner.md)."""
    root_level = logging.getLogger("controller").getEffectiveLevel()
    logging.basicConfig(level=root_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s",
                        force=True)  # logs to stderr: stdout carries the data
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here


def _api(url: str, key: str | None, method: str, path: str, **kw: Any) -> Any:
    import httpx

    if not key:
        fail("no API key: give --key or set $KUAT_API_KEY")
    try:
        r = httpx.request(method, url.rstrip("/") + path, headers={"X-API-Key": key, **kw.pop("headers", {})},
                          timeout=120, **kw)  # fmt: skip
    except httpx.HTTPError as exc:
        fail(f"cannot reach the controller at {url}: {exc}")
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        if isinstance(detail, list):
            detail = "; ".join(f"{d.get('loc')}: {d.get('msg')}" for d in detail)
        fail(f"{r.status_code} from the controller: {detail}")
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _q(day: Any) -> str:
    return "" if day is None else f"day={day.date().isoformat()}"


@cli.command("curve")
@URL
@KEY
@click.option("--site", help="the site (with --url)")
@DAY
@click.option("--fleet", "fleet_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="offline: a TOML fleet file ([[machines]] model, count, power_target) instead of a controller")
@click.option("--hashprice", type=float, help="offline: USD per PH/s per day")
@click.option("--usd", type=float, help="offline: KZT per USD")
@click.option("--pool-fee", type=float, default=0.02, show_default=True, help="offline")
@click.option("--mining-fee", type=float, default=2.0, show_default=True, help="offline: KZT per kWh")
@click.option("--connection-mw", type=float, help="offline: cut the curve at this power")
@JSON
def curve(url: str, key: str | None, site: str | None, day: Any, fleet_file: Path | None, hashprice: float | None,
          usd: float | None, pool_fee: float, mining_fee: float, connection_mw: float | None, as_json: bool) -> None:
    """The fleet's value of energy per hour: blocks of MWh, the TH/s each adds, what a MWh of it is worth."""
    if fleet_file is not None:
        doc = _offline_curve(fleet_file, hashprice, usd, pool_fee, mining_fee, connection_mw)
    else:
        if not site:
            fail("give --site (or --fleet FILE to compute offline)")
        doc = _api(url, key, "GET", f"/api/v1/planner/curve?site={site}&{_q(day)}")
    if as_json:
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    e = doc["economics"]
    click.echo(f"{doc.get('site', 'fleet file')} {doc.get('day', '')}: hashprice {e['hashprice_usd_per_ph_day']:g} "
               f"USD/PH/day ({e['hashprice_source']}), {e['usd_kzt']:g} KZT/USD ({e['usd_source']}), pool fee "
               f"{e['pool_fee']:.1%}, mining fee {e['mining_fee_kzt_per_kwh']:g} KZT/kWh ({e['mining_fee_source']})")
    click.echo(f"{'hour':>4} {'machines':>8} {'fleet MWh':>10} {'conn. MWh':>10}  blocks: MWh @ KZT/MWh")
    for h in doc["hours"]:
        blocks = ", ".join(f"{b['mwh']:.3f} @ {b['value_kzt_per_mwh']:,.0f}" for b in h["blocks"][:6])
        more = f" (+{len(h['blocks']) - 6})" if len(h["blocks"]) > 6 else ""
        click.echo(f"{h['hour']:>4} {h['machines']:>8} {h['fleet_mwh']:>10.3f} {h['connection_mwh']:>10.3f}  "
                   f"{blocks}{more}")
    for n in doc.get("notes", []):
        click.echo(f"note: {n}", err=True)


def _offline_curve(path: Path, hashprice: float | None, usd: float | None, pool_fee: float, mining_fee: float,
                   connection_mw: float | None) -> dict[str, Any]:
    from kuat.catalog import MODELS
    from planner.curve import energy_curve
    from planner.economics import Economics
    from planner.errors import PlannerInputError
    from quota.fleet import FleetArrays, Machine

    if hashprice is None or usd is None:
        fail("offline curves need --hashprice and --usd")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path}: not a TOML file: {exc}")
    machines = []
    for n, entry in enumerate(data.get("machines", []), start=1):
        unknown = set(entry) - {"model", "count", "power_target"}
        if unknown or entry.get("model") not in MODELS or not isinstance(entry.get("count"), int):
            fail(f"{path}: machines[{n}]: needs model (one of {', '.join(MODELS)}), count (a whole number), "
                 f"optional power_target; got {entry}")
        spec = MODELS[entry["model"]]
        target = bool(entry.get("power_target", False))
        machines += [Machine(f"{entry['model']}-{n}-{i}", spec, power_target=target,
                             presets=(1.0,) if target else (1.0, 0.75), outlet_switchable=True)
                     for i in range(entry["count"])]  # fmt: skip
    if not machines:
        fail(f"{path}: no [[machines]]")
    try:
        econ = Economics(hashprice, usd, pool_fee, mining_fee, "--hashprice", "--usd", "--mining-fee")
    except PlannerInputError as err:
        fail(str(err))
    c = energy_curve(FleetArrays.from_machines(machines), max_w=None if connection_mw is None else connection_mw * 1e6)
    blocks = [{"start_mwh": b.start_mwh, "mwh": b.mwh, "ths": b.ths, "ths_per_w": b.ths_per_w,
               "value_kzt_per_mwh": econ.value_kzt_per_mwh(b.ths_per_w)} for b in c.blocks]  # fmt: skip
    hour = {"hour": 0, "machines": c.machines, "fleet_mwh": c.fleet_max_w / 1e6,
            "connection_mwh": connection_mw if connection_mw is not None else c.fleet_max_w / 1e6, "blocks": blocks}
    return {"economics": {"hashprice_usd_per_ph_day": hashprice, "hashprice_source": "--hashprice", "usd_kzt": usd,
                          "usd_source": "--usd", "pool_fee": pool_fee, "mining_fee_kzt_per_kwh": mining_fee,
                          "mining_fee_source": "--mining-fee", "kzt_per_ths_hour": econ.kzt_per_ths_hour},
            "hours": [hour], "notes": ["offline: one curve for every hour (no telemetry, no derating)"]}


@cli.command("bids")
@URL
@KEY
@DAY
@click.option("--budget-kzt", type=float, help="the prepayment (default: the controller's planner.prepayment_kzt)")
@click.option("--freeze", is_flag=True, help="store these bids as the set to submit (operator key)")
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path),
              help="with --freeze: write the submission file here (.csv or .json)")
@JSON
def bids(url: str, key: str | None, day: Any, budget_kzt: float | None, freeze: bool, export_to: Path | None,
         as_json: bool) -> None:
    """Tomorrow's stepwise bids per zone and hour, their limits, the summary and what each constraint cost."""
    if export_to is not None and not freeze:
        fail("--export needs --freeze (only a frozen set is submitted)")
    if freeze:
        body: dict[str, Any] = {}
        if day is not None:
            body["day"] = day.date().isoformat()
        if budget_kzt is not None:
            body["budget_kzt"] = budget_kzt
        doc = _api(url, key, "POST", "/api/v1/planner/bids", json=body)
        log.info("bid set %s for %s frozen", doc["id"], doc["day"])
        if export_to is not None:
            fmt = "json" if export_to.suffix == ".json" else "csv"
            text = _api(url, key, "GET", f"/api/v1/planner/bids/{doc['id']}/export?format={fmt}")
            export_to.write_text(text if isinstance(text, str) else json.dumps(text, indent=1))
            log.info("wrote %s", export_to)
    else:
        query = "&".join(q for q in (_q(day), "" if budget_kzt is None else f"budget_kzt={budget_kzt}") if q)
        doc = _api(url, key, "GET", f"/api/v1/planner/bids?{query}")
    if as_json:
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    if "id" in doc:
        click.echo(f"bid set {doc['id']} for {doc['day']}; exports: {', '.join(doc['exports'].values())}")
    click.echo(f"{'zone':14} {'hour':>4} {'step':>4} {'MWh':>8} {'price':>10} {'value':>10} {'P(win)':>6}  rule")
    for s in doc["steps"]:
        click.echo(f"{s['zone']:14} {s['hour']:>4} {s['step']:>4} {s['quantity_mwh']:>8.3f} "
                   f"{s['price_kzt_per_mwh']:>10,.0f} {s['value_kzt_per_mwh']:>10,.0f} {s['win_probability']:>6.2f}  "
                   f"{s['price_rule']}")
    s = doc["summary"]
    click.echo(f"bid {s['bid_mwh']:.3f} MWh, prepayment {s['prepayment_kzt']:,.0f} KZT; expected "
               f"{s['expected_mwh']:.3f} MWh for {s['expected_cost_kzt']:,.0f} KZT, margin "
               f"{s['expected_margin_kzt']:,.0f} KZT, {s['expected_avg_ths']:,.1f} TH/s on average")
    click.echo("constraint costs (expected margin if lifted alone), KZT: " + ", ".join(
        f"{k} {v:,.0f}" for k, v in s["constraint_costs_kzt"].items()))


@cli.command("results")
@URL
@KEY
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@JSON
def results(url: str, key: str | None, file: Path, as_json: bool) -> None:
    """Import one day's published results (CSV, docs/planner.md) and push each site's schedule."""
    doc = _api(url, key, "POST", f"/api/v1/planner/results?filename={file.name}", content=file.read_bytes(),
               headers={"content-type": "text/csv"})
    if as_json:
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    click.echo(f"import {doc['import_id']}: {doc['rows']} rows for {doc['day']}, {doc['won_mwh']:.3f} MWh won")
    for site, info in doc["sites"].items():
        if info.get("schedule_id") is None:
            click.echo(f"{site}: schedule REFUSED: {info.get('refused')}")
        else:
            click.echo(f"{site}: schedule {info['schedule_id']}, {info['kwh']:,.1f} kWh ({info['reference']})")


@cli.command("backtest")
@click.option("--days", type=int, default=30, show_default=True, help="days backtested")
@click.option("--warmup", type=int, default=30, show_default=True, help="days of history before them")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--connection-mw", type=float, default=4.0, show_default=True)
@click.option("--budget-mkzt", type=float, default=2.5, show_default=True, help="prepayment per day, M KZT")
@click.option("--mining-fee", type=float, default=2.0, show_default=True, help="KZT per kWh")
@click.option("--pool-fee", type=float, default=0.02, show_default=True)
@JSON
def backtest(days: int, warmup: int, seed: int, connection_mw: float, budget_mkzt: float, mining_fee: float,
             pool_fee: float, as_json: bool) -> None:
    """The planner's margin against buying the connection flat at one price and buying yesterday's use, on a
    SYNTHETIC month (labelled as such; planner.synthetic), printed side by side."""
    from planner.backtest import table
    from planner.synthetic import synthetic_backtest

    if days < 1 or warmup < 0:
        fail("--days must be at least 1 and --warmup at least 0")
    with click.progressbar(length=days, label="backtest", file=sys.stderr) as bar:
        run = synthetic_backtest(days, warmup, seed, connection_mw, budget_mkzt, mining_fee=mining_fee,
                                 pool_fee=pool_fee, progress=lambda n: bar.update(1))
    if as_json:
        click.echo(json.dumps({"label": run.header, "strategies": [
            {"name": r.name, "bid_mwh": r.bid_mwh, "won_mwh": r.won_mwh, "cost_kzt": r.cost_kzt,
             "revenue_kzt": r.revenue_kzt, "fee_kzt": r.fee_kzt, "margin_kzt": r.margin_kzt,
             "avg_ths": r.avg_ths, "losing_days": r.losing_days, "days": r.days, "prepaid_kzt": r.prepaid_kzt,
             "daily_margin_kzt": r.daily_margin} for r in run.results], "notes": run.footer}, indent=1))  # fmt: skip
        return
    click.echo(table(run.results, run.header))
    click.echo()
    click.echo(run.footer)

