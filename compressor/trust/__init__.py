"""What makes an input file safe to open: `.pt2` scan, schema and sandboxed load, bounded reads."""
