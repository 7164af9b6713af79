"""Review queue, routing policies and the hash-chained audit log."""
