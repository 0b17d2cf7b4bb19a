"""Kuat demo."""
