"""data commands (being written)."""
