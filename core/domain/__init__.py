"""Typed contracts and pure rules: errors, safe text, display, validation, metrics."""
