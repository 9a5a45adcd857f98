"""Model compression and edge-deployment compiler."""

__version__ = "0.1.0"
