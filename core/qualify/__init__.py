"""Step 1 of the playbook: qualify the trigger before anything is built."""
