"""Step 2 of the playbook: the success gate, locked before anyone trains."""
