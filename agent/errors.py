"""Device errors, in their own module so transports can raise them without importing the drivers package."""

from __future__ import annotations


class DeviceError(Exception):
    """The device answered, but wrongly (bad reply, command refused, ...)."""


class DeviceUnreachable(DeviceError):
    """No answer: refused, timed out, reset."""


class CommandUnsupported(DeviceError):
    """The firmware has no such control (e.g. a power target on stock Antminer firmware)."""
