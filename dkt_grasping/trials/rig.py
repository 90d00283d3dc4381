"""The ``rig`` trial backend: trials on the real robot (D435, depth/metric/grasp/planner/arm nodes over ROS 2).

Not available in this version: driving the real node graph from the trial
runner (capture on request, wait for the cloud, grasps, plan, execute and read
the gripper) is still to be written. Selecting it fails at once with a
:class:`RigUnavailableError` that says so, instead of running anything.
"""

from __future__ import annotations

from dkt_grasping.trials.session import SessionSpec


class RigUnavailableError(RuntimeError):
    """The rig backend cannot run here (not implemented in this version, or no rig)."""


class RigTrialBackend:
    name = "rig"

    def __init__(self, spec: SessionSpec):
        raise RigUnavailableError(
            "the 'rig' trial backend (real camera, depth, grasp, planner and PiPER nodes over ROS 2) is not implemented "
            f"in this version, so session surface={spec.surface!r} method={spec.method!r} cannot run on the robot; "
            "use --backend simulation, or record rig trials with the operator prompt once it lands"
        )
