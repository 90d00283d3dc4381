"""ROS 2 nodes of the perception graph: thin shells over the dkt_perception core."""
