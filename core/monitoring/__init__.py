"""After launch: the staged rollout of a shipped student, the request log it leaves, drift and re-distillation."""
