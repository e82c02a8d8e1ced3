"""train commands (being written)."""
