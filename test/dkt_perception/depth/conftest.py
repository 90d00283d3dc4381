"""Tiny DKT networks shared by the depth tests (built once per session, CPU, random weights)."""

import pytest

from dkt_perception.depth import wan_model
from dkt_perception.depth.conditioning import random_text_context


@pytest.fixture(scope="session")
def tiny_networks():
    net = wan_model.build_transformer("tiny", seed=0)
    vae = wan_model.build_vae("tiny", seed=1)
    return net, vae, random_text_context(net.config.text_dim, seed=0)
