"""The simulated mining site: miners speaking their real protocols and PDUs over SNMP, on loopback, obeying
physics. Product code never imports this package; the demo, tests and benchmarks do."""
