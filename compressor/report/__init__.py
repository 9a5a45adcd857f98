"""What a run measured, written and read back: report schema, rendering, notes, run record."""
