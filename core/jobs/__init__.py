"""Background jobs: rows in the jobs table that `finmed worker` claims, runs with progress, and finishes."""
