"""Production inputs: import and validation, deduplication, coverage, the holdout."""
