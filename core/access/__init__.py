"""People, projects, roles, tokens, separation of duties and blind-review visibility."""
