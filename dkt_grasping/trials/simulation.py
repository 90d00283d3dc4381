"""The ``simulation`` trial backend: the synthetic tabletop, the real perception and grasp code, the simulated arm.

Per trial: a fresh scene (the default tabletop with objects moved and turned
a little, seeded), rendered by the simulated D435; the session's depth method
(``raw`` = the simulated sensor, which sees through glass; ``ground_truth`` =
exact depth, an oracle: both metric, used as they are; ``dkt`` and
``depth_anything_v2`` get the AprilTag scale and shift of
:class:`~dkt_perception.metric_pipeline.MetricPipeline`); the same cloud
builder for all; grasp detection;
grasps on the target are those whose centre projects into the operator's box
around the target (its image bounding box grown by a margin, the stand-in for
an operator pointing at the object); CPU planning; execution on the simulated
arm, whose fingers stop on whatever lies between them in the exact geometry
(the gripper feedback); the ground-truth verdict of
:mod:`dkt_grasping.trials.ground_truth`.

Frames: the scene's world frame is the table (z up, table top z = 0); the
robot base sits on the table at :data:`BASE_IN_WORLD`, axes parallel to the
world's; the default tabletop's objects are moved to :data:`TRIAL_LAYOUT` so
that all of them lie within the PiPER's reach (base x 0.2 .. 0.36 m).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from dkt_grasping.arm import create_arm, execute_plan
from dkt_grasping.arm.base import ArmState
from dkt_grasping.grasp_detection import EmptyCloudError, create_grasp_detector
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.kinematics import PiperKinematics
from dkt_grasping.planning import GripperCommand, PlanningError, create_planner
from dkt_grasping.planning.base import JointTrajectory
from dkt_grasping.trials.backend import TrialAttempt
from dkt_grasping.trials.depth_methods import TrialDepthMethod
from dkt_grasping.trials.ground_truth import GroundTruthGrasp
from dkt_grasping.trials.session import SCENE_SURFACE, SessionSpec
from dkt_grasping.workspace import WorkspaceLimits
from dkt_perception.metric_pipeline import MetricPipeline, MetricPipelineConfig
from dkt_perception.synthetic_scene import SceneConfig, SyntheticScene, default_scene_config
from dkt_stack.transforms import make_transform, transform_points

#: Robot base origin in the scene's world (table) frame, m; base axes = world axes.
BASE_IN_WORLD = (-0.30, 0.10, 0.0)
#: Footprint centres (world x, y, m) of the default tabletop's objects in trials: in reach, clear of each other and of the tags.
TRIAL_LAYOUT = {
    "red_box": (-0.10, 0.12),
    "glass": (0.04, 0.04),
    "can": (0.06, 0.20),
    "plastic_box": (-0.05, -0.06),
    "blue_cup": (-0.09, 0.30),
}
#: Arm configuration at the start of every trial (rad): raised above the table, out of the way.
HOME_Q = (0.0, 0.8, -0.9, 0.0, 0.5, 0.0)


def T_world_base() -> np.ndarray:  # noqa: N802 - the transform's conventional name
    return make_transform(np.eye(3), np.asarray(BASE_IN_WORLD, dtype=np.float64))


def trial_scene_config(spec: SessionSpec, seed: int) -> SceneConfig:
    """The default tabletop at the session's image size, objects at :data:`TRIAL_LAYOUT` moved/turned by a seeded jitter."""
    s = spec.simulation
    config = default_scene_config(seed, width=s.width, height=s.height)
    rng = np.random.default_rng(seed)
    moved = []
    for obj in config.objects:
        x, y = TRIAL_LAYOUT.get(obj.name, obj.position)
        dx, dy = rng.uniform(-s.jitter_m, s.jitter_m, 2)
        dyaw = np.deg2rad(rng.uniform(-s.yaw_jitter_deg, s.yaw_jitter_deg)) if obj.kind == "box" else 0.0
        moved.append(dataclasses.replace(obj, position=(x + dx, y + dy), yaw=obj.yaw + dyaw))
    config.objects = moved
    return config


def session_targets(spec: SessionSpec, config: SceneConfig) -> list[str]:
    """Target object names: the named ones, else every object of the session's surface type."""
    names = [o.name for o in config.objects]
    if spec.objects:
        unknown = [n for n in spec.objects if n not in names]
        if unknown:
            raise ValueError(f"unknown object(s) {unknown} for the simulated scene; it has {', '.join(names)}")
        return list(spec.objects)
    material = SCENE_SURFACE[spec.surface]
    return [o.name for o in config.objects if o.surface == material]


class ContactArm:
    """The simulated arm in the simulated world: closing fingers stop on the object between them.

    Wraps any :class:`~dkt_grasping.arm.base.Arm`; on a closing gripper command the finger
    opening becomes the exact-geometry contact opening at the arm's current pose, which is
    what the real gripper's width feedback reports. ``grasp_depth`` (m) must be set per grasp.
    """

    def __init__(self, arm, kinematics: PiperKinematics, world: GroundTruthGrasp):
        self.arm, self.kin, self.world = arm, kinematics, world
        self.grasp_depth = 0.0
        self.T_base_gripper_at_close: np.ndarray | None = None
        self.open_width_at_close = 0.0

    def connect(self) -> None:
        self.arm.connect()

    def enable(self) -> None:
        self.arm.enable()

    def read_state(self) -> ArmState:
        return self.arm.read_state()

    def execute(self, trajectory: JointTrajectory) -> ArmState:
        return self.arm.execute(trajectory)

    def set_gripper(self, width: float, effort: float) -> None:
        state = self.arm.read_state()
        if width < state.gripper_width:
            T_tcp = self.kin.fk(state.q, "tcp")  # the tcp is the fingertip centre, in the gripper convention
            T = T_tcp.copy()
            T[:3, 3] -= self.grasp_depth * T_tcp[:3, 2]
            self.T_base_gripper_at_close, self.open_width_at_close = T, state.gripper_width
            width = max(width, self.world.contact_opening(T, self.grasp_depth, state.gripper_width))
        self.arm.set_gripper(width, effort)

    def stop(self) -> None:
        self.arm.stop()

    def disable(self) -> None:
        self.arm.disable()

    def close(self) -> None:
        self.arm.close()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)


def _rounded(a, digits: int = 6) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


class SimulationTrialBackend:
    """Trials on the synthetic scene (see the module docstring)."""

    name = "simulation"

    def __init__(self, spec: SessionSpec):
        if spec.backend != "simulation":
            raise ValueError(f"SimulationTrialBackend needs spec.backend == 'simulation', got {spec.backend!r}")
        self.spec = spec
        self.depth = TrialDepthMethod(spec.method, weights_dir=spec.weights_dir, depth_anything_model=spec.depth_anything_model)
        self.kin = PiperKinematics()
        self.gripper = GripperConfig()
        self.workspace = WorkspaceLimits()
        self.targets = session_targets(spec, trial_scene_config(spec, spec.seed))
        if not self.targets:
            raise ValueError(f"the simulated scene has no {spec.surface} object to grasp")
        self._checksum: str | None = None

    def weights_checksum(self) -> str:
        if self._checksum is None:
            self._checksum = self.depth.weights_checksum()
        return self._checksum

    def close(self) -> None:
        """Nothing to release: each trial builds its own scene and arm."""

    def run_trial(self, trial_index: int, attempt: int, seed: int) -> TrialAttempt:
        """One trial on a fresh scene drawn from ``seed``; the target cycles through the session's targets by index."""
        spec, s = self.spec, self.spec.simulation
        target = self.targets[trial_index % len(self.targets)]
        out = TrialAttempt(target=target, seed=seed)
        out.parameters = {
            "image_size": [s.width, s.height],
            "detector": spec.grasp_detector,
            "planner": spec.planner,
            "arm": spec.arm,
            "holding_threshold_m": spec.holding_threshold_m,
            "base_in_world_m": list(BASE_IN_WORLD),
            "home_q_rad": list(HOME_Q),
            "oracle": spec.is_oracle,
        }
        t_total = time.perf_counter()
        try:
            self._run(out, seed)
        finally:
            out.timings_ms["total"] = _ms(t_total)
        return out

    def _fail(self, out: TrialAttempt, stage: str, reason: str) -> TrialAttempt:
        out.failure_stage, out.failure_reason = stage, reason
        return out

    def _run(self, out: TrialAttempt, seed: int) -> TrialAttempt:
        spec, s = self.spec, self.spec.simulation
        # -- capture
        t0 = time.perf_counter()
        scene = SyntheticScene(trial_scene_config(spec, seed))
        frames = [scene.render(i) for i in range(s.capture_frames)]
        frame = frames[-1]
        out.timings_ms["capture"] = _ms(t0)
        out.snapshots["rgb"] = frame.rgb
        T_base_camera = np.linalg.inv(T_world_base()) @ scene.T_world_camera
        target_obj = next(o for o in scene.objects if o.name == out.target)
        rows, cols = np.nonzero(frame.labels == target_obj.id)
        if rows.size == 0:
            return self._fail(out, "capture", f"{out.target} is not visible from the camera")
        m = s.roi_margin_px
        roi = [int(cols.min()) - m, int(rows.min()) - m, int(cols.max()) + m, int(rows.max()) + m]  # u0, v0, u1, v1 px
        out.parameters["target_roi_px"] = roi
        # -- depth
        t0 = time.perf_counter()
        disparity = self.depth.estimate(np.stack([f.rgb for f in frames]), np.stack([f.raw_depth_m for f in frames]), frame.depth_gt_m)
        out.timings_ms["depth"] = _ms(t0)
        # -- metric depth + cloud. Metric methods are used as they are; relative ones get the AprilTag scale and shift
        # (one pipeline per trial: its temporal filter must not carry a scale from one scene to the next).
        t0 = time.perf_counter()
        pipeline = MetricPipeline(MetricPipelineConfig())
        if self.depth.metric:
            with np.errstate(divide="ignore", invalid="ignore"):
                depth_m = np.where(disparity > 0, 1.0 / disparity, np.nan).astype(np.float32)
            cloud = pipeline.clouds.build(depth_m, scene.intrinsics, frame.rgb)
            out.parameters["metric_scale"], out.parameters["metric_shift"] = 1.0, 0.0
        else:
            metric = pipeline.process(disparity, frame.rgb, scene.intrinsics, frame.stamp_ns, frame.raw_depth_m)
            r = metric.result
            depth_m, cloud = r.depth_m, metric.cloud
            out.parameters["metric_scale"] = None if r.scale is None else round(float(r.scale), 6)
            out.parameters["metric_shift"] = None if r.shift is None else round(float(r.shift), 6)
            if cloud is None:
                out.timings_ms["metric_depth"] = _ms(t0)
                return self._fail(out, "metric_depth", f"no metric depth: {r.reason}")
        out.timings_ms["metric_depth"] = _ms(t0)
        if depth_m is not None:
            out.snapshots["depth_m"] = depth_m.astype(np.float32)
        if len(cloud) == 0:
            return self._fail(out, "metric_depth", "the point cloud is empty")
        out.snapshots["cloud_xyz"] = cloud.xyz
        if cloud.rgb is not None:
            out.snapshots["cloud_rgb"] = cloud.rgb
        out.parameters["cloud_points"] = len(cloud)
        # -- grasp detection, then the grasps on the target
        t0 = time.perf_counter()
        detector = create_grasp_detector(spec.grasp_detector, {"seed": seed % (2**31)} if spec.grasp_detector == "antipodal" else None)
        try:
            grasps = detector.detect(cloud.xyz, cloud.rgb, T_base_camera, self.workspace)
        except EmptyCloudError as exc:
            grasps = []
            out.parameters["detector_message"] = str(exc)
        uv = scene.intrinsics.project(transform_points(np.linalg.inv(T_base_camera), np.array([g.position for g in grasps]).reshape(-1, 3)))
        on_target = [g for g, (u, v) in zip(grasps, uv) if roi[0] <= u <= roi[2] and roi[1] <= v <= roi[3]]
        out.timings_ms["grasp_detection"] = _ms(t0)
        out.parameters["grasps_found"] = len(grasps)
        out.parameters["grasps_on_target"] = len(on_target)
        if not on_target:
            return self._fail(out, "grasp_detection", f"no grasp on {out.target} ({len(grasps)} grasps in the scene)")
        # -- planning
        t0 = time.perf_counter()
        planner = create_planner(spec.planner, {"seed": seed % (2**31)} if spec.planner == "cpu" else None)
        scene_points = transform_points(T_base_camera, cloud.xyz.astype(np.float64))
        try:
            plan = planner.plan_grasp(np.asarray(HOME_Q), on_target, scene_points)
        except PlanningError as exc:
            out.timings_ms["planning"] = _ms(t0)
            return self._fail(out, "planning", f"{exc.kind}: {exc.reason}")
        out.timings_ms["planning"] = _ms(t0)
        g = plan.grasp
        out.grasp = {
            "pose_base": _rounded(g.pose),
            "width_m": round(float(g.width), 5),
            "score": round(float(g.score), 5),
            "depth_m": round(float(g.depth), 5),
            "rank_among_target_grasps": next(i for i, c in enumerate(on_target) if c is g),
        }
        out.trajectory = {
            "steps": [
                {"name": st.name, "duration_s": round(st.action.duration, 4), "samples": len(st.action.times)}
                if isinstance(st.action, JointTrajectory)
                else {"name": st.name, "gripper_width_m": round(st.action.width, 5)}
                for st in plan.steps
                if isinstance(st.action, JointTrajectory | GripperCommand)
            ],
            "duration_s": round(plan.duration, 4),
            "planning_time_s": round(plan.planning_time, 4),
            "q_start_rad": _rounded(HOME_Q),
            "q_grasp_rad": None if plan.q_grasp is None else _rounded(plan.q_grasp),
            "q_end_rad": _rounded(plan.trajectories()[-1].positions[-1]),
        }
        # -- execution (approach, close, lift) on the simulated arm in the exact world
        t0 = time.perf_counter()
        world = GroundTruthGrasp(
            scene.objects,
            T_world_base(),
            self.gripper,
            spacing_m=s.object_sampling_m,
            centre_margin_m=s.centre_margin_m,
            table_tolerance_m=s.table_tolerance_m,
            push_tolerance_m=s.push_tolerance_m,
        )
        arm = ContactArm(create_arm("simulated", {"initial_q": list(HOME_Q)}), self.kin, world)
        arm.grasp_depth = g.depth
        arm.connect()
        arm.enable()
        try:
            state = execute_plan(arm, plan)
        finally:
            arm.close()
        out.timings_ms["execution"] = _ms(t0)
        out.gripper_width_m = round(float(state.gripper_width), 5)
        if arm.T_base_gripper_at_close is None:
            return self._fail(out, "execution", "the plan never closed the gripper")
        out.grasp["executed_pose_base"] = _rounded(arm.T_base_gripper_at_close)
        t0 = time.perf_counter()
        out.ground_truth = world.judge(arm.T_base_gripper_at_close, g.depth, arm.open_width_at_close, out.target)
        out.timings_ms["ground_truth"] = _ms(t0)
        return out
