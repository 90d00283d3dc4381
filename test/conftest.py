"""Test-session set-up shared by the whole suite.

Every test session gets its own ROS_DOMAIN_ID and localhost-only discovery
before anything imports rclpy, so parallel CI jobs and a developer's running
rig never see each other's topics.
"""

from __future__ import annotations

import os

import pytest

from dkt_stack.ros.harness import isolate_ros_environment

DOMAIN_ID = isolate_ros_environment()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def ros():
    """An isolated rclpy context with a spinning executor (see dkt_stack.ros.harness.RosHarness)."""
    from dkt_stack.ros.harness import RosHarness

    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()
