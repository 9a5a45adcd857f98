"""Measure and judge: fidelity, latency, budgets, the default floor and the verdict's records."""
