"""Control paths per firmware: how a miner is told to sleep, wake, reboot, take a power target or switch boards.

Each firmware record (`agent.firmware.<family>.FIRMWARE.control`) names its control class; `pyasic.PyasicControl`
is the path for the long tail and the baseline the lean paths are measured against (bench/setpoints.py).
"""
