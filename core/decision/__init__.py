"""Step 5c: ship, iterate or kill, rounds' data requests, the decision record, the portfolio."""
