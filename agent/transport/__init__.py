"""Wire transports the drivers use: cgminer RPC over TCP 4028, HTTP digest (Antminer web API), SNMP sessions.

Transports know nothing of Kuat's model; they move bytes and raise `agent.errors` errors.
"""
