"""Kuat registry."""
