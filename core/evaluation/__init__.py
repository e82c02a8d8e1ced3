"""Step 5 of the playbook: a trained or imported student scored on the locked holdout against the gate."""
