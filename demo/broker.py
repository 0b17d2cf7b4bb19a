"""The demo's MQTT broker: mosquitto when installed, otherwise amqtt (pure Python, in the dev dependencies).

`python -m demo.broker --port N` runs the embedded amqtt broker on 127.0.0.1:N until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path

log = logging.getLogger("demo.broker")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.path.exists(p)), None)


def mosquitto_conf(path: Path, port: int) -> Path:
    """The demo's broker: loopback only, anonymous (the demo's own machine), nothing persisted.

    Started as root, mosquitto would switch to its own user; Linux then drops the parent-death signal that makes the
    broker stop with a killed demo, so as root it keeps its user (it only listens on 127.0.0.1)."""
    keep_user = "user root\n" if os.geteuid() == 0 else ""
    path.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"
        f"log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n{keep_user}"
    )
    return path


def amqtt_config(port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 200}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve_amqtt(port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(amqtt_config(port))
    await broker.start()
    log.info("amqtt broker listening on 127.0.0.1:%d", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("amqtt broker stopping")
    await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="Embedded MQTT broker (amqtt) for the Kuat demo, on loopback.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machine logs every step
    asyncio.run(serve_amqtt(args.port))


if __name__ == "__main__":
    main()
