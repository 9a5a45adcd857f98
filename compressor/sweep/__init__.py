"""Sweeps: many models × targets × precisions × recipe variants as ordinary compress runs,
in this process or on Ray (see compressor/sweep/run.py for the flow)."""
