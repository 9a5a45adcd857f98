"""The `compress run` pipeline: its steps, precision choice, verdict and pass metrics."""
