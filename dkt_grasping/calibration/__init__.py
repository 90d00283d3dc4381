"""Hand-eye calibration of the rig: the front camera to each arm's base, a wrist camera to its flange.

Functional core (no rclpy): the target (:mod:`.board`), sample checks
(:mod:`.detection`), pose-set checks (:mod:`.pose_set`), automatic poses
(:mod:`.poses`), collection into an on-disk session (:mod:`.collection`,
:mod:`.session`, :mod:`.live`), the solvers (:mod:`.solver`: OpenCV's
closed forms and a joint reprojection refinement), verification
(:mod:`.verify`), the steps together (:mod:`.workflow`), a synthetic rig with
a known answer (:mod:`.synthetic`), the MuJoCo Cobot Magic as a calibration
rig (:mod:`.mujoco_rig`), the CLI (:mod:`.cli`) and the benchmark
(:mod:`.benchmark`). The ROS shell is ``dkt_grasping.nodes.calibration_node``.
Results go into the rig file (:func:`dkt_stack.rig.update_rig_pose`).
"""
