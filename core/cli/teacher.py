"""teacher commands (being written)."""
