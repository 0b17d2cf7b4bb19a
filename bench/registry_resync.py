"""A restarted site controller of 10,000 machines back in sync with its decisions (issue 11, goal < 5 s).

The national registry on a private PostgreSQL, 10,000 included machines at one DPC (plus --others elsewhere),
bulk-loaded like bench/registry_scale.py, served by `uvicorn registry.app:create_app`. The controller side is the
real `RegistryLink` over HTTP (`HttpDpcPort`) on its own database (SQLite file, or --controller-db):

1. cold: a controller whose database was lost (cursor 0) follows the feed to its head into the mirror;
2. ready: the mirror read back and the power rule (quota.rights) evaluated for every machine;
3. warm restart: a new link on the same database (the cursor kept) reads the feed to its head again.

Figures are printed, never asserted.

    .venv/bin/python bench/registry_resync.py
    .venv/bin/python bench/registry_resync.py --machines 50000 --page 5000
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this folder first on sys.path would shadow packages

from bench.registry_scale import BIG_DPC, code, load, serial, start_server, valid_bin
from controller.db import init_controller_db
from controller.registry_link.client import RegistryLink
from controller.registry_link.transport import HttpDpcPort
from controller.settings import RegistryLinkSettings
from quota.rights import Rights
from registry.national.setup import bind_dpc_key
from serverkit.db import make_engine, session_factory
from serverkit.timeutil import system_clock
from tests.support.postgres import PostgresCluster
from tests.support.servers import stop_process

POOL = "stratum+tcp://pool.kz-accredited.example:3333"


def decisions_of_owner_and_pool(url: str) -> None:
    """The feed items the bulk load leaves out: the DPC operator's licence and the accredited pool (every DPC)."""
    from sqlalchemy import text

    licence = {"kind": "licence", "bin": valid_bin(10_000_000 + BIG_DPC * 7), "name": f"Operator {BIG_DPC}",
               "licence_number": f"DM-{BIG_DPC:06d}", "subtype": "I", "valid_from": "2025-01-01",
               "valid_to": "2028-12-31", "status": "active"}
    pool = {"kind": "pool", "id": 1, "name": "KZ Pool", "endpoints": [POOL], "accreditation_number": "AP-1",
            "valid_from": "2025-01-01", "valid_to": "2028-12-31", "withdrawn": False}
    engine = make_engine(url)
    with engine.begin() as conn:
        for dpc, item in ((BIG_DPC, licence), (None, pool)):
            conn.execute(text("INSERT INTO feed_entry (dpc_id, at, data) VALUES (:d, now(), :j)"),
                         {"d": dpc, "j": json.dumps(item)})
    engine.dispose()


def link_on(engine_url: str, base: str, key: str, page: int) -> RegistryLink:
    engine = make_engine(engine_url)
    init_controller_db(engine)
    settings = RegistryLinkSettings(mode="embedded", dpc=code(BIG_DPC), feed_page=page)
    return RegistryLink(HttpDpcPort(base, key, timeout_s=120), engine, settings, system_clock)


@click.command()
@click.option("--machines", default=10_000, show_default=True, help="included machines of the controller's DPC")
@click.option("--others", default=20_000, show_default=True, help="machines at other DPCs (not in its feed)")
@click.option("--page", default=5_000, show_default=True, help="feed page size (registry.feed_page)")
@click.option("--controller-db", default=None, help="the controller's database URL (default: a SQLite file)")
def main(machines: int, others: int, page: int, controller_db: str | None) -> None:
    """Print how long a restarted controller takes to be back in sync with its DPC's decisions."""
    cluster = PostgresCluster().start()
    proc = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix="kuat-bench-resync-"))
        url = cluster.create_database()
        t0 = time.perf_counter()
        load(url, machines + others, 3, machines)
        decisions_of_owner_and_pool(url)
        print(f"registry: {machines + others:,} included machines bulk-loaded ({machines:,} at {code(BIG_DPC)}) in "
              f"{time.perf_counter() - t0:.1f} s")
        key = bind_dpc_key(session_factory(make_engine(url)), "bench-controller", [code(BIG_DPC)])
        proc, base = start_server(url, 1, tmp)
        ctl_url = controller_db or f"sqlite:///{tmp / 'controller.sqlite'}"

        link = link_on(ctl_url, base, key, page)
        t0 = time.perf_counter()
        changed = link.follow()
        cold = time.perf_counter() - t0
        cursor = link.mirror.cursor()
        print(f"cold resync (cursor 0 -> {cursor.after}): {changed:,} subjects into the mirror in {cold:.2f} s "
              f"({changed / cold:,.0f}/s, pages of {page})  goal < 5 s")

        t0 = time.perf_counter()
        _, mirror = link.mirror.load()
        rights = Rights(mirror, system_clock(), timedelta(hours=72))
        reasons: dict[str, int] = {}
        for i in range(1, machines + 1):
            r = rights.of(serial(i), [POOL]).reason.value
            reasons[r] = reasons.get(r, 0) + 1
        ready = time.perf_counter() - t0
        print(f"mirror read back and the rule over {machines:,} machines: {ready:.2f} s (reasons {reasons})")
        print(f"restarted controller with a lost database, back in sync and deciding: {cold + ready:.2f} s  "
              f"goal < 5 s")

        again = link_on(ctl_url, base, key, page)
        t0 = time.perf_counter()
        changed = again.follow()
        again.mirror.load()
        warm = time.perf_counter() - t0
        print(f"warm restart (cursor kept at {again.mirror.cursor().after}): {changed} subjects, head reached and "
              f"mirror loaded in {warm:.2f} s")
    finally:
        stop_process(proc)
        cluster.stop()


if __name__ == "__main__":
    main()
