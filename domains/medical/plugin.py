"""Registers the medical domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from core.plugins import DomainPlugin

plugin = DomainPlugin(name="medical")
