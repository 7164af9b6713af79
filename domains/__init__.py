"""Domain packages (finance, medical); each plugs into core through core.plugins."""
