"""Kuat quota."""
