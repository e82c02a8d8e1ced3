"""Serving a shipped student behind its rollout stage: routing, the HTTP service and the request log."""
