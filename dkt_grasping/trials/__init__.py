"""Grasp success-rate trials: run sessions, store every trial in SQLite, report rates like the paper's table.

* :mod:`.session`: what a session is (surface type, depth method, objects, arm, backend).
* :mod:`.backend`: the hardware-independent :class:`~.backend.TrialBackend` interface;
  :mod:`.simulation` (the MuJoCo Cobot Magic of :mod:`dkt_sim`, judged physically) and
  :mod:`.rig` (a running node graph: the robot, or ``cobot_magic_sim``); :mod:`.arm_choice`
  picks the arm of a dual-arm rig; :mod:`.synthetic_layout` is the ``simulation`` graph's tabletop.
* :mod:`.judge`: the operator prompt and the physics judge, with the gripper-feedback suggestion.
* :mod:`.runner`: the resumable trial loop; :mod:`.database`: the versioned SQLite schema;
  :mod:`.artifacts`: atomic snapshot files.
* :mod:`.statistics` (Wilson, Fisher) and :mod:`.report` (tables and the bar chart);
  :mod:`.cli` is ``dkt-stack trials``; :mod:`.demo` has :func:`~.demo.run_demo_trials`.
"""
