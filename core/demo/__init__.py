"""The demo: generated tickets, seeded projects and the demo teacher (only the CLI and pages import it)."""
