"""Typed contracts and pure rules: errors, safe text, display, validation, metrics, and the contracts that cross a
step (qualification inputs, job params and results, data requests, column mappings), read back from stored JSON."""
