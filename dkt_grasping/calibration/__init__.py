"""Hand-eye calibration of the rig (placeholder docstring, rewritten below)."""
