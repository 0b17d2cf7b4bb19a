"""The day-ahead bid planner for the miners' KOREM auction: pure functions, no I/O (docs/planner.md)."""
