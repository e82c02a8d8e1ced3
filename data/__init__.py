"""The demo's data: a generator of synthetic support tickets (our own code, fixed seed)."""
