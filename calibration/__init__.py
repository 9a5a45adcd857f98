"""Calibration and evaluation data, range methods and the bundled example set."""
