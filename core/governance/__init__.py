"""Governance: people, projects, roles, the trigger, the gate and the audit chain."""
