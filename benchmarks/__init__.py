"""Benchmark zoo and runner: models made in code, trained on data that ships with dependencies."""
