"""Grasping core of dkt_stack: grasp detection, PiPER kinematics, motion planning and the arm driver.

Everything here is plain Python (numpy, open3d, pinocchio, coal, ompl, ruckig,
piper-sdk); the ROS nodes in :mod:`dkt_grasping.nodes` are thin shells over it.
Frames: ``base`` is the PiPER base link (REP 103: x forward, z up, metres);
grasp poses use the PiPER gripper convention of :mod:`dkt_grasping.grasp_frames`.
"""
