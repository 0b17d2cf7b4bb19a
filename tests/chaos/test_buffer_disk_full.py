"""The agent's buffer on a full disk (real processes: the real agent polling the simulator, mosquitto). The broker
is away, so every batch stays in the buffer, and the disk under it fills: a real 3 MB tmpfs filled up by another
file where the test runs as root and may mount one, otherwise SQLite's own `PRAGMA max_page_count` on the agent's
buffer (a real "database or disk is full" either way). The agent keeps polling and never crashes; it drops the
oldest batches and counts them (`kuat_agent_buffer_dropped_total`); when the broker comes, what arrives is every
batch but exactly the counted oldest ones. (KUAT_NO_TMPFS=1 takes the max_page_count way as root too.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import config_from_dict
from agent.metrics import render_metrics
from agent.service import Agent
from kuat.wire import v1
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import Controller, running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim
from tests.chaos.support import until
from tests.support.servers import Mosquitto, free_port

RESERVE_KB = 256
FREE_KB = 48  # what the filler leaves free: a few seconds of this site's telemetry (about 10 KB/s at 0.5 s)


def mount_tmpfs(where: Path, size: str) -> bool:
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None or os.environ.get("KUAT_NO_TMPFS"):
        return False
    where.mkdir()
    return subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          timeout=10).returncode == 0  # fmt: skip


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(directory for the buffer, how it will be filled: "tmpfs" or "max_page_count")."""
    where = tmp_path / "disk"
    if not mount_tmpfs(where, "3m"):
        where.mkdir(exist_ok=True)
        yield where, "max_page_count"
        return
    try:
        yield where, "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(where)], timeout=10, check=False)


def filler(where: Path, how: str, agent: Agent) -> Callable[[], None]:
    """The disk filled up to FREE_KB (by another file, or by capping the buffer's pages)."""
    def fill() -> None:
        if how == "tmpfs":
            st = os.statvfs(where)
            hog = st.f_bavail * st.f_frsize - FREE_KB * 1024
            fd = os.open(where / "hog", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, max(hog, 4096))
            finally:
                os.close(fd)
        else:
            db = agent.buffer._db  # the cap is per connection: it must be the agent's own
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={pages + FREE_KB // 4}")
    return fill


async def test_a_full_disk_under_the_buffer_drops_the_oldest_and_the_agent_polls_on(
        sim: Sim, disk: tuple[Path, str]) -> None:
    where, how = disk
    port = free_port()  # no broker there yet: every batch is buffered
    data = agent_config_dict(sim.site_file, None, broker_port=port, buffer_path=where / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
    data["buffer"]["reserve_kb"] = RESERVE_KB
    cfg = config_from_dict(data)
    async with running_agent(cfg) as agent:
        await until(lambda: agent.coordinator.cycles >= 3, "three poll cycles", 20)
        filler(where, how, agent)()
        await until(lambda: agent.buffer.dropped > 0, "the full disk making the agent drop batches", 20)
        cycles_then = agent.coordinator.cycles
        await until(lambda: agent.coordinator.cycles >= cycles_then + 5, "polling going on on the full disk", 10)
        health = agent.health()
        metrics = render_metrics(health)
        assert f"kuat_agent_buffer_dropped_total {health.buffer_dropped}" in metrics
        assert health.buffer_disk_full > 0 and health.cycles_unbuffered == 0
        with Mosquitto(port=port) as _broker:
            controller = Controller(port, cfg.site, cfg.gateway)
            try:
                await until(lambda: agent.publisher.connected, "the agent connected to the broker", 15)
                handed = agent.buffer.last_seq()
                await until(lambda: bool(controller.batches) and max(b.seq for b in controller.batches) >= handed,
                            "the buffer replayed", 20)  # fmt: skip
                got = sorted({b.seq for b in controller.batches})
                dropped = agent.buffer.dropped
                # still on the full disk: a setpoint batch is applied, acked and renews the lease (kept in the buffer)
                device = sim.first("bmminer").d.mac or ""
                controller.send(v1.Command(id="full-1", kind=v1.CommandKind.SETPOINTS, lease_s=60.0,
                                           setpoints=[v1.Setpoint(device_id=device, mode=v1.SetpointMode.SLEEP)]))
                ack = await controller.ack_for("full-1", timeout_s=20)
                assert ack.status == v1.AckStatus.APPLIED, ack
                assert agent.lease.batch_id == "full-1" and agent.buffer.command_ack("full-1") is not None
            finally:
                controller.client.loop_stop()
                controller.client.disconnect()
    missing = sorted(set(range(1, got[-1] + 1)) - set(got))
    print(f"\n{how}: {len(got)} batches arrived, {dropped} dropped and counted (seq 1..{missing[-1]}), "
          f"{health.buffer_disk_full} disk-full events, the agent polled on ({cycles_then} -> "
          f"{agent.coordinator.cycles} cycles); a setpoint batch on the full disk: {ack.status.value}")
    assert missing == list(range(1, dropped + 1)), "lost something other than exactly the counted oldest batches"
