"""Versioned wire schema shared by the edge agent and the controller. See docs/wire-protocol.md."""

from kuat.wire import v1

CURRENT = v1
__all__ = ["CURRENT", "v1"]
