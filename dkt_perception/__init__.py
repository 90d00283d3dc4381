"""Perception for the DKT stack: depth, AprilTag metric scale, point clouds and the synthetic scene."""
