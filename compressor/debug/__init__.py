"""`compress debug`: which layers int8 breaks, traced stage by stage and rendered."""
