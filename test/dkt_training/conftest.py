"""Shared fixtures for the training tests: the tiny synthetic dataset, written once per session."""

import pytest

from dkt_training.tiny_dataset import make_tiny_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Path of the tiny dataset's training manifest (val_manifest.yaml beside it)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"), frames=9, sequences=2, images=3, height=32, width=48)
