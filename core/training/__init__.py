"""Students and their distillation: builders, the KD loss, the training loop, jobs."""
