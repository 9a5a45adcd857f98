"""Lowerings, one folder per target, plus the Target/Runner protocols and a registry."""
