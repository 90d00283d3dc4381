"""Shipped training configs (YAML); a package so that the files install with dkt_training."""
