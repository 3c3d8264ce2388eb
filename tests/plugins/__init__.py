"""Fixture plugins shared across test folders, registered in tests/conftest.py."""
