"""Teacher adapters (local model directory, OpenAI-compatible HTTP, file), ensembles, filtering."""
