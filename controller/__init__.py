"""Kuat controller."""
