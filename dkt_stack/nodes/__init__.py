"""ROS 2 nodes of the shared foundation (static_tf_node)."""
