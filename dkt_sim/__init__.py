"""dkt_sim: a physics simulation of the AgileX Cobot Magic (two PiPER arms, front D435, a table) on MuJoCo.

Functional core without rclpy; the ROS shell is :mod:`dkt_sim.nodes.sim_node`.

* :mod:`dkt_sim.rig_geometry`: where the arms, table, tags and camera stand (sources cited there);
* :mod:`dkt_sim.objects`: the object library (surface classes translucent, reflective,
  diffusive) and seeded scene randomisation;
* :mod:`dkt_sim.mjcf`: the MJCF of rig + scene, generated from code (arm kinematics from
  :mod:`dkt_grasping.piper_model`);
* :mod:`dkt_sim.world`: the MuJoCo model and data, arm control (position actuators, a
  force-closing parallel gripper);
* :mod:`dkt_sim.camera`: the D435 on MuJoCo's renders (RGB, raw depth with the shared failure
  model of :mod:`dkt_perception.d435_model`, ground truth);
* :mod:`dkt_sim.execution`: timed arm + gripper sequences tracked in physics, watched for
  collisions and pushes; :mod:`dkt_sim.judge`: lifted and held, or the stage it failed at;
* :mod:`dkt_sim.strip`: per-trial picture strips; :mod:`dkt_sim.benchmark`: ``dkt-stack bench sim``;
* :mod:`dkt_sim.attachments`: optional pictures on plates and flange cameras (hand-eye calibration's
  board and wrist D435), off by default.

MuJoCo renders offscreen through EGL: :func:`dkt_sim.mujoco_runtime.load_mujoco` sets
``MUJOCO_GL=egl`` when it is unset, before importing mujoco.
"""
