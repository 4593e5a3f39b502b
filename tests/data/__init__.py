"""Tests for piip_llava.data (a package so its conftest does not shadow tests/conftest.py)."""
