"""Kuat agent."""
