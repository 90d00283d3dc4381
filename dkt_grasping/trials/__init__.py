"""Grasp success-rate trials: run sessions, store every trial in SQLite, report rates like the paper's table.

* :mod:`.session`: what a session is (surface type, depth method, objects, arm, backend).
* :mod:`.backend`: the hardware-independent :class:`~.backend.TrialBackend` interface;
  :mod:`.simulation` (synthetic scene, simulated arm, exact-geometry outcome via
  :mod:`.ground_truth`) and :mod:`.rig` (the real robot; not available yet).
* :mod:`.judge`: the operator prompt and the ground-truth judge, with the gripper-feedback suggestion.
* :mod:`.runner`: the resumable trial loop; :mod:`.database`: the versioned SQLite schema;
  :mod:`.artifacts`: atomic snapshot files.
* :mod:`.statistics` (Wilson, Fisher) and :mod:`.report` (tables and the bar chart);
  :mod:`.cli` is ``dkt-stack trials``; :mod:`.demo` has :func:`~.demo.run_demo_trials`.
"""
