"""After launch: staged rollout, monitoring settings, the request log read back, drift, re-distillation."""
