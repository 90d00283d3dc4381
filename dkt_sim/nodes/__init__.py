"""ROS 2 shell of the simulator (:mod:`.sim_node`)."""
