"""Pure torch: student families, the KD loss, the training loop, builders (no database)."""
