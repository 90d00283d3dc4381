"""dkt_stack: shared foundation of the DKT grasping stack.

Pure modules (no ROS): :mod:`dkt_stack.config`, :mod:`dkt_stack.graph`,
:mod:`dkt_stack.intrinsics`, :mod:`dkt_stack.transforms`.
ROS message conversions: :mod:`dkt_stack.conversions` (message packages only).
rclpy helpers for nodes: :mod:`dkt_stack.ros`. Command line: :mod:`dkt_stack.cli`.
"""

__version__ = "0.1.0"
