"""The medical domain: builds on core through the seams registered in plugin.py."""
