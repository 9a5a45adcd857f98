"""`--auto`: the search over plans, its trials, choice, block latency, fallback and sensitivity."""
