"""The record underneath every step: settings, engine and tables, migrations, artifacts, the audit chain,
vouched reads, the job queue."""
