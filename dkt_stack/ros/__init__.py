"""rclpy helpers shared by every node: typed parameters, QoS, diagnostics, main()."""
