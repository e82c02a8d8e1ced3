"""Step 5b: disagreements, verdicts, kappa, sign-off, threshold proposals."""
