"""Training and serving metrics (Prometheus) and gradient health."""
