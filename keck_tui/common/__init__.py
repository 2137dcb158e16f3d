"""Mechanisms shared by every layer: no keck-top imports above this package."""
