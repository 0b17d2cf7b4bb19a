"""Simulated miners speaking their real protocols: stock Antminer (bmminer RPC + web), LuxOS, Whatsminer (btminer).

`MinerServers(site, ServeOptions(port_offset=...)).start()` puts every miner of a `sim.runtime.Site` on its own
loopback address; the firmware modules only translate wire requests into calls on the miner's physics.

Where the replies come from: key sets, types and units of every command that has a capture in
shared/fixtures/miners are checked against it (tests/sim/test_miner_wire.py). Where there is no capture the shape
follows what pyasic 0.79 reads plus the vendors' API docs, and is an assumption: LuxOS status codes other than
version/atm/groups/curtail, the LuxOS `profiles`/`power`/`session` replies, Whatsminer `get_version`,
`get_miner_info`, `get_psu` and `get_error_code`, and the Antminer web replies of set_miner_conf/reboot/blink.
Quirks on demand: `broken_json` is `}{` between STATS objects (bmminer, as captured), `\\'` in the firmware
string plus a trailing `,}` (btminer, as captured / as pyasic repairs), a trailing `,}` for LuxOS (no capture).
"""

from sim.miners.net import APIS, MinerServers, ServeOptions

__all__ = ["APIS", "MinerServers", "ServeOptions"]
