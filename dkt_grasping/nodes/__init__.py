"""ROS 2 shells over the grasping core: grasp_node, planner_node, arm_node."""
