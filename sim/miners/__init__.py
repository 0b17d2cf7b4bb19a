"""Simulated miners speaking their real protocols: stock Antminer (bmminer RPC + web), LuxOS, Whatsminer (btminer).

`MinerServers(site, ServeOptions(port_offset=...)).start()` puts every miner of a `sim.runtime.Site` on its own
loopback address; the firmware modules only translate wire requests into calls on the miner's physics.
"""

from sim.miners.net import APIS, MinerServers, ServeOptions

__all__ = ["APIS", "MinerServers", "ServeOptions"]
