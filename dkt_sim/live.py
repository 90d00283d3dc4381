"""The simulated rig running live: physics in real time on a thread, arms that take trajectories, a camera to read.

What :mod:`dkt_sim.nodes.sim_node` wires to ROS, usable without rclpy:

* a physics thread steps the world at ``realtime_factor`` x wall-clock speed;
  each arm follows its current :class:`~dkt_sim.execution.TimedSequence`
  (position + velocity setpoints, the gripper closing by force) or holds
  its last setpoint;
* :meth:`SimRuntime.execute` validates and queues a sequence for an arm: bad
  input (a joint outside its limits, NaN, a malformed sequence) or a busy or
  stopped arm is a :class:`~dkt_sim.world.CommandError` with the reason, and
  the simulation goes on untouched;
* :meth:`SimRuntime.stop` holds an arm where it is and refuses sequences until
  :meth:`SimRuntime.enable`, like the real driver's quick stop;
* :meth:`SimRuntime.capture` renders a D435 frame of the current state (from a
  copy, so physics keeps running); call it from one thread only (the GL
  context lives there);
* :meth:`SimRuntime.reset` draws a new scene (the operator resetting the table).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from dkt_grasping.reachability import ArmModelConfig
from dkt_sim.camera import CameraConfig, SimCamera, SimFrame
from dkt_sim.execution import ExecutionReport, SequenceRunner, TimedSequence
from dkt_sim.mjcf import PhysicsConfig
from dkt_sim.objects import SceneRandomisation, randomise_scene
from dkt_sim.world import CommandError, SimWorld
from dkt_stack.config import param


@dataclass
class SimRuntimeConfig:
    """The live simulation: scene, image size, speed."""

    seed: int = param(0, help="scene seed (objects, their poses, sensor noise); ~/reset draws the next one")
    surface: str = param("translucent", help="surface class of the scene's target object: translucent, reflective or diffusive")
    width: int = param(640, help="D435 image width (px)")
    height: int = param(480, help="D435 image height (px)")
    realtime_factor: float = param(1.0, help="simulated seconds per wall-clock second (the physics thread sleeps to keep it)")
    scene: SceneRandomisation = param(default_factory=SceneRandomisation, help="how scenes are drawn")
    physics: PhysicsConfig = param(default_factory=PhysicsConfig, help="physics and control settings")
    arm: ArmModelConfig = param(default_factory=ArmModelConfig, help="the arms' kinematic model: give it the planner's (zero convention, tool)")
    camera: CameraConfig = param(default_factory=CameraConfig, help="the simulated D435's sensor model")

    def __post_init__(self):
        if self.width < 64 or self.height < 48:
            raise ValueError(f"image must be at least 64x48 px, got {self.width}x{self.height}")
        if not 0.01 <= self.realtime_factor <= 100.0:
            raise ValueError(f"realtime_factor must be in [0.01, 100], got {self.realtime_factor}")


@dataclass
class ArmStatus:
    """An arm's state for joint_states and diagnostics: q (6,) rad, gripper opening m, busy, stopped, last report."""

    q: np.ndarray
    opening: float
    busy: bool
    stopped: bool
    last: ExecutionReport | None


class SimRuntime:
    """See the module docstring. ``start()`` the physics thread, ``close()`` it."""

    def __init__(self, config: SimRuntimeConfig | None = None):
        self.config = c = config or SimRuntimeConfig()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seed = int(c.seed)
        self._build(self.seed)

    def _build(self, seed: int) -> None:
        c = self.config
        self.scene = randomise_scene(seed, c.surface, config=c.scene)
        self.world = SimWorld(self.scene, width=c.width, height=c.height, physics=c.physics, arm_model=c.arm)
        self.camera = SimCamera(self.world, c.camera, seed=seed)
        self._runners: dict[str, SequenceRunner | None] = {a: None for a in self.world.arms}
        self._last: dict[str, ExecutionReport | None] = {a: None for a in self.world.arms}
        self._stopped = {a: False for a in self.world.arms}

    @property
    def arms(self) -> list[str]:
        return list(self.world.arms)

    # ------------------------------------------------------------------ physics thread
    def start(self) -> SimRuntime:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sim-physics", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        dt = self.world.model.opt.timestep
        chunk = max(1, round(0.01 / dt))  # steps between clock checks (10 ms of simulated time)
        wall0, sim0 = time.monotonic(), self.world.time
        while not self._stop.is_set():
            with self._lock:
                for _ in range(chunk):
                    self._step_once()
                sim = self.world.time
            ahead = (sim - sim0) / self.config.realtime_factor - (time.monotonic() - wall0)
            if ahead > 0:
                self._stop.wait(ahead)
            elif ahead < -0.5:  # fell behind (a loaded machine): do not try to catch up in a burst
                wall0, sim0 = time.monotonic(), sim

    def _step_once(self) -> None:
        for arm, runner in self._runners.items():
            if runner is not None:
                runner.update()
                if runner.done:
                    self._last[arm], self._runners[arm] = runner.report, None
        self.world.step(1)

    # ------------------------------------------------------------------ arms
    def execute(self, arm: str, sequence: TimedSequence) -> None:
        """Run ``sequence`` on ``arm`` from now on; :class:`CommandError` (nothing changes) when it cannot."""
        with self._lock:
            if arm not in self.world.arms:
                raise CommandError(f"no arm {arm!r} in the simulated rig (arms: {', '.join(self.world.arms)})")
            if self._stopped[arm]:
                raise CommandError(f"arm {arm} is stopped; call its ~/enable service first")
            if self._runners[arm] is not None:
                raise CommandError(f"arm {arm} is still executing its previous trajectory")
            q0 = self.world.arm_q(arm)
            jump = float(np.abs(sequence.positions[0, :6] - q0).max())
            if jump > 0.1:  # a trajectory must start where the arm is, as on the real driver's limiter
                raise CommandError(f"the trajectory starts {np.rad2deg(jump):.1f} deg away from the arm's current joints")
            self._runners[arm] = SequenceRunner(self.world, arm, sequence, target=None)

    def stop(self, arm: str) -> None:
        """Hold the arm where it is now and refuse trajectories until :meth:`enable`."""
        with self._lock:
            runner = self._runners[arm]
            if runner is not None:
                runner.stop("stopped on request")
                self._last[arm], self._runners[arm] = runner.report, None
            else:
                self.world.command(arm, self.world.arm_q(arm), opening=self.world.gripper_command(arm))
            self._stopped[arm] = True

    def enable(self, arm: str) -> None:
        with self._lock:
            if arm not in self._stopped:
                raise CommandError(f"no arm {arm!r} in the simulated rig")
            self._stopped[arm] = False

    def status(self, arm: str) -> ArmStatus:
        with self._lock:
            w = self.world
            return ArmStatus(w.arm_q(arm), w.gripper_opening(arm), self._runners[arm] is not None, self._stopped[arm], self._last[arm])

    # ------------------------------------------------------------------ camera and scene
    def capture(self, frame_index: int) -> SimFrame:
        """A D435 frame of the current state (rendered outside the physics lock)."""
        with self._lock:
            self.camera.snapshot()
            camera = self.camera
        return camera.capture(frame_index)

    def reset(self, seed: int | None = None) -> int:
        """A new scene (the next seed by default): arms home, objects redrawn. Returns the seed. Renderers are rebuilt
        on the next capture, so call it from the thread that captures, or between captures."""
        with self._lock:
            self.camera.close()
            self.seed = self.seed + 1 if seed is None else int(seed)
            self._build(self.seed)
            return self.seed

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
