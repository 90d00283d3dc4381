"""The ``simulation`` trial backend: the MuJoCo Cobot Magic of :mod:`dkt_sim`, the real perception, grasp and planning code.

Per trial (everything seeded by the trial's seed):

1. **scene**: :func:`dkt_sim.objects.randomise_scene` draws a target of the
   session's surface class (or one of its named objects), neighbours and
   distractors; the world settles under gravity;
2. **capture** (stage ``perception``): the simulated D435 renders colour, raw
   depth with its material-specific failures and the exact depth;
3. **depth** (``perception``): the session's method: ``raw`` (the simulated
   sensor), ``ground_truth`` (the exact depth: an oracle), or a relative
   method (``dkt``, ``depth_anything_v2``) scaled by the AprilTags on the
   table through :class:`~dkt_perception.metric_pipeline.MetricPipeline`; then
   the same cloud builder for all;
4. **detection and arm** (``detection``): as grasp_node does on a two-arm rig,
   each arm (its camera pose from ``config/rig/cobot_magic_sim.yaml``, the rig
   interface the real robot uses) gets the grasps it can execute
   (:class:`~dkt_grasping.grasp_detection.executable.ExecutableGraspDetector`)
   on the target: the cloud points on the target's pixels grown by a margin
   (the stand-in for an operator pointing at the object) are the detector's
   ``target``, so it seeds its grasps there and keeps those closing on it
   before ranking; :func:`dkt_grasping.arm_choice.choose_arm` picks the arm with
   the best. Without ``check_reachability``: every grasp on the target, and the
   arm whose base is nearest the target (:func:`nearest_arm`);
5. **planning** (``planning``) from the arm's current joints;
6. **execution** in physics: the plan as planner_node publishes it
   (:func:`~dkt_grasping.planning.base.plan_to_arrays`) tracked by the arm's
   position actuators, the gripper closing by force, the lift, a hold;
   :func:`dkt_sim.judge.judge_grasp` says held, or ``execution`` / ``grasp``.

A picture strip (camera and external view at capture, grasp and after the
hold) is kept as the ``strip`` snapshot. The physics judge
(:class:`~dkt_grasping.trials.judge.PhysicsJudge`) turns the outcome into a verdict.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from dkt_grasping.arm_choice import ArmOption, choose_arm
from dkt_grasping.grasp_detection import EmptyCloudError, create_grasp_detector
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector, arm_scene
from dkt_grasping.planning import GripperCommand, PlanningError, create_planner
from dkt_grasping.planning.base import JointTrajectory
from dkt_grasping.reachability import ReachabilityChecker
from dkt_grasping.trials.backend import PhysicsOutcome, TrialAttempt
from dkt_grasping.trials.depth_methods import TrialDepthMethod
from dkt_grasping.trials.session import SessionSpec
from dkt_grasping.workspace import WorkspaceLimits
from dkt_perception.metric_pipeline import MetricPipeline, MetricPipelineConfig
from dkt_stack.config import to_dict
from dkt_stack.rig import load_rig
from dkt_stack.transforms import invert_transform, transform_points

#: The rig file describing the simulated Cobot Magic (camera pose per arm).
SIM_RIG = "cobot_magic_sim"


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)


def _rounded(a, digits: int = 6) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def nearest_arm(target_camera: np.ndarray | None, roi: list[int], cloud_xyz: np.ndarray, intrinsics, T_base_camera: dict[str, np.ndarray]) -> str:
    """The arm whose base is nearest the target (horizontal distance in each base frame), seen at ``target_camera``
    (camera frame, m), or when nothing was measured there, on the operator box's centre ray at the cloud's median depth."""
    if target_camera is None:
        u, v = (roi[0] + roi[2]) / 2, (roi[1] + roi[3]) / 2
        z = float(np.nanmedian(cloud_xyz[:, 2]))
        target_camera = np.array([(u - intrinsics.cx) / intrinsics.fx * z, (v - intrinsics.cy) / intrinsics.fy * z, z])
    p = np.asarray(target_camera, dtype=np.float64).reshape(1, 3)
    return min(T_base_camera, key=lambda name: float(np.linalg.norm(transform_points(T_base_camera[name], p)[0, :2])))


def target_points(cloud_xyz: np.ndarray, intrinsics, mask: np.ndarray) -> np.ndarray:
    """The operator's target over a cloud: bool (N,), whether each point (camera frame, m) projects onto a True pixel
    of ``mask`` (H, W); points without depth (NaN, z <= 0) or outside the image are not on it."""
    xyz = np.asarray(cloud_xyz, dtype=np.float64)
    out = np.zeros(len(xyz), dtype=bool)
    ok = np.all(np.isfinite(xyz), axis=1) & (xyz[:, 2] > 0) if len(xyz) else out
    if not ok.any():
        return out
    uv = np.rint(intrinsics.project(xyz[ok])).astype(np.int64)
    h, w = mask.shape
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    hit = np.zeros(len(uv), dtype=bool)
    hit[inside] = mask[uv[inside, 1], uv[inside, 0]]
    out[np.flatnonzero(ok)] = hit
    return out


def target_position_camera(cloud_xyz: np.ndarray, intrinsics, roi: list[int]) -> np.ndarray | None:
    """Median of the cloud points (camera frame, m) that project into the ROI ``[u0, v0, u1, v1]`` px; None when there are none."""
    xyz = np.asarray(cloud_xyz, dtype=np.float64)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1) & (xyz[:, 2] > 0)] if len(xyz) else xyz
    if not len(xyz):
        return None
    uv = intrinsics.project(xyz)
    inside = (uv[:, 0] >= roi[0]) & (uv[:, 0] <= roi[2]) & (uv[:, 1] >= roi[1]) & (uv[:, 1] <= roi[3])
    return np.median(xyz[inside], axis=0) if inside.any() else None


class SimulationTrialBackend:
    """Trials in the physics simulation (see the module docstring)."""

    name = "simulation"

    def __init__(self, spec: SessionSpec):
        if spec.backend != "simulation":
            raise ValueError(f"SimulationTrialBackend needs spec.backend == 'simulation', got {spec.backend!r}")
        self.spec = spec
        self.depth = TrialDepthMethod(spec.method, weights_dir=spec.weights_dir, depth_anything_model=spec.depth_anything_model)
        self.rig = load_rig(SIM_RIG)
        self.T_base_camera = {name: mount.T_base_camera for name, mount in self.rig.arms.items()}
        self.workspace = WorkspaceLimits()
        self.checker = ReachabilityChecker(spec.reachability) if spec.check_reachability else None
        self._checksum: str | None = None

    def weights_checksum(self) -> str:
        if self._checksum is None:
            self._checksum = self.depth.weights_checksum()
        return self._checksum

    def close(self) -> None:
        """Nothing to release: each trial builds (and closes) its own world."""

    def run_trial(self, trial_index: int, attempt: int, seed: int) -> TrialAttempt:
        """One trial in a fresh world drawn from ``seed`` (``trial_index`` and ``attempt`` only label it)."""
        from dkt_sim.objects import randomise_scene

        spec, s = self.spec, self.spec.simulation
        scene = randomise_scene(seed, spec.surface, target_kinds=spec.objects or None, config=s.scene)
        out = TrialAttempt(target=scene.target_object.kind, seed=seed)
        out.parameters = {
            "image_size": [s.width, s.height], "detector": spec.grasp_detector, "planner": spec.planner, "oracle": spec.is_oracle,
            "holding_threshold_m": spec.holding_threshold_m, "scene": scene.to_json_dict(), "rig": SIM_RIG,
        }  # fmt: skip
        t_total = time.perf_counter()
        try:
            self._run(out, scene, seed)
        finally:
            out.timings_ms["total"] = _ms(t_total)
        return out

    def _fail(self, out: TrialAttempt, stage: str, reason: str) -> TrialAttempt:
        out.failure_stage, out.failure_reason = stage, reason
        return out

    def _run(self, out: TrialAttempt, scene, seed: int) -> TrialAttempt:
        from dkt_sim.camera import SimCamera
        from dkt_sim.strip import PictureStrip
        from dkt_sim.world import SimWorld

        s = self.spec.simulation
        t0 = time.perf_counter()
        tile = (s.strip_tile_px, round(s.strip_tile_px * s.height / s.width))
        world = SimWorld(
            scene, width=s.width, height=s.height, physics=s.physics, arm_model=self.spec.reachability.arm,
            offscreen=(max(s.width, tile[0]), max(s.height, tile[1])),
        )  # fmt: skip
        camera = SimCamera(world, seed=seed)
        strip = PictureStrip(s.strip_tile_px) if s.strips else None
        out.timings_ms["scene"] = _ms(t0)
        try:
            return self._pipeline(out, scene, seed, world, camera, strip, tile)
        finally:
            if strip is not None and strip.columns:
                out.snapshots["strip"] = strip.compose()
            camera.close()

    def _picture(self, strip, camera, caption: str, tile) -> None:
        if strip is not None:
            camera.snapshot()
            strip.add(caption, camera.view("d435", *tile), camera.view("external", *tile))

    def _pipeline(self, out: TrialAttempt, scene, seed: int, world, camera, strip, tile) -> TrialAttempt:
        from dkt_sim.execution import SequenceRunner, run_to_end, sequence_from_plan
        from dkt_sim.judge import judge_grasp
        from dkt_sim.world import CommandError

        spec, s = self.spec, self.spec.simulation
        # -- capture
        t0 = time.perf_counter()
        camera.snapshot()
        frames = [camera.capture(i) for i in range(s.capture_frames)]
        frame = frames[-1]
        self._picture(strip, camera, f"capture: {out.target}", tile)
        out.timings_ms["capture"] = _ms(t0)
        out.snapshots["rgb"] = frame.rgb
        rows, cols = np.nonzero(frame.labels == scene.target + 1)
        if rows.size == 0:
            return self._fail(out, "capture", f"{out.target} is not visible from the camera")
        m = s.roi_margin_px
        roi = [int(cols.min()) - m, int(rows.min()) - m, int(cols.max()) + m, int(rows.max()) + m]  # u0, v0, u1, v1 px
        out.parameters["target_roi_px"] = roi
        target_mask = cv2.dilate((frame.labels == scene.target + 1).astype(np.uint8), np.ones((2 * m + 1, 2 * m + 1), np.uint8)) > 0
        # -- depth
        t0 = time.perf_counter()
        disparity = self.depth.estimate(np.stack([f.rgb for f in frames]), np.stack([f.raw_depth_m for f in frames]), frame.depth_gt_m)
        out.timings_ms["depth"] = _ms(t0)
        # -- metric depth + cloud: metric methods as they are; relative ones get the AprilTag scale and shift
        # (one pipeline per trial: its temporal filter must not carry a scale from one scene to the next).
        t0 = time.perf_counter()
        pipeline = MetricPipeline(MetricPipelineConfig())
        if self.depth.metric:
            with np.errstate(divide="ignore", invalid="ignore"):
                depth_m = np.where(disparity > 0, 1.0 / disparity, np.nan).astype(np.float32)
            cloud = pipeline.clouds.build(depth_m, frame.intrinsics, frame.rgb)
            out.parameters["metric_scale"], out.parameters["metric_shift"] = 1.0, 0.0
        else:
            stamp_ns = round(frame.sim_time_s * 1e9)
            metric = pipeline.process(disparity, frame.rgb, frame.intrinsics, stamp_ns, frame.raw_depth_m)
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
        # -- grasps on the target, and which arm takes them: as grasp_node does with a rig's two arms, each arm gets the
        # grasps it can execute and the arm with the best one (on the target) wins; without the reachability check,
        # every grasp, and the arm whose base is nearest the target
        t0 = time.perf_counter()
        base_detector = create_grasp_detector(spec.grasp_detector, {"seed": seed % (2**31)} if spec.grasp_detector == "antipodal" else None)
        detector = ExecutableGraspDetector(base_detector, self.checker) if spec.check_reachability else base_detector
        options = [ArmOption(name, T, detector, self.workspace) for name, T in self.T_base_camera.items()]
        target = target_points(cloud.xyz, frame.intrinsics, target_mask)
        out.parameters["target_points"] = int(target.sum())
        if not target.any():
            out.timings_ms["grasp_detection"] = _ms(t0)
            return self._fail(out, "grasp_detection", f"no point of the cloud lies on {out.target}")
        if spec.check_reachability:
            choice = choose_arm(options, cloud.xyz, cloud.rgb, target)
            arm, on_target = choice.arm, choice.grasps
            out.parameters["arm_choice"] = {"reason": choice.reason, "per_arm": choice.per_arm}
        else:
            arm = nearest_arm(target_position_camera(cloud.xyz, frame.intrinsics, roi), roi, cloud.xyz, frame.intrinsics, self.T_base_camera)
            option = next(o for o in options if o.name == arm)
            try:
                on_target = option.detector.detect(cloud.xyz, cloud.rgb, option.T_base_camera, option.workspace, target)
            except EmptyCloudError as exc:
                on_target = []
                out.parameters["detector_message"] = str(exc)
        out.timings_ms["grasp_detection"] = _ms(t0)
        out.parameters["arm"] = arm
        out.parameters["grasps_on_target"] = len(on_target)
        if arm is None or not on_target:
            why = out.parameters["arm_choice"]["reason"] if arm is None else "none found"
            return self._fail(out, "grasp_detection", f"no executable grasp on {out.target}: {why}")
        T_base_camera = self.T_base_camera[arm]
        # -- planning, from where the arm is
        t0 = time.perf_counter()
        arm_model = to_dict(spec.reachability.arm)
        planner = create_planner(spec.planner, {"seed": seed % (2**31), "arm": arm_model} if spec.planner == "cpu" else None)
        scene_points = arm_scene(cloud.xyz, T_base_camera, target)  # the target goes with the gripper: no obstacle
        q_start = world.arm_q(arm)
        try:
            plan = planner.plan_grasp(q_start, on_target, scene_points)
        except PlanningError as exc:
            out.timings_ms["planning"] = _ms(t0)
            return self._fail(out, "planning", f"{exc.kind}: {exc.reason}")
        out.timings_ms["planning"] = _ms(t0)
        g = plan.grasp
        out.grasp = {
            "arm": arm, "pose_base": _rounded(g.pose), "width_m": round(float(g.width), 5), "score": round(float(g.score), 5),
            "depth_m": round(float(g.depth), 5), "rank_among_target_grasps": int(plan.grasp_index),
        }  # fmt: skip
        out.trajectory = {
            "steps": [
                {"name": st.name, "duration_s": round(st.action.duration, 4), "samples": len(st.action.times)}
                if isinstance(st.action, JointTrajectory)
                else {"name": st.name, "gripper_width_m": round(st.action.width, 5)}
                for st in plan.steps
                if isinstance(st.action, JointTrajectory | GripperCommand)
            ],
            "duration_s": round(plan.duration, 4), "planning_time_s": round(plan.planning_time, 4), "q_start_rad": _rounded(q_start),
            "q_grasp_rad": None if plan.q_grasp is None else _rounded(plan.q_grasp), "q_end_rad": _rounded(plan.trajectories()[-1].positions[-1]),
        }  # fmt: skip
        # -- execution in physics, then the judge
        t0 = time.perf_counter()
        try:
            sequence = sequence_from_plan(plan, s.gripper_dwell_s)
        except CommandError as exc:
            out.timings_ms["execution"] = _ms(t0)
            return self._fail(out, "execution", f"the arm refused the plan: {exc}")
        start_z = float(world.object_pose(scene.target)[2, 3])
        runner = SequenceRunner(world, arm, sequence, target=scene.target, hold_s=s.hold_s)
        captions = {"closed": "grasp: gripper closed", "held": f"lift: after a {s.hold_s:g} s hold"}

        def on_grip(name: str) -> None:
            if name == "closed":  # where the fingers closed, in the arm's base frame
                out.grasp["executed_tcp_base"] = _rounded(invert_transform(world.T_world_base(arm)) @ world.tcp_pose(arm))
            if name in captions:
                self._picture(strip, camera, captions[name], tile)

        report = run_to_end(world, runner, on_grip=on_grip)
        out.timings_ms["execution"] = _ms(t0)
        out.gripper_width_m = round(world.gripper_opening(arm), 5)
        verdict = judge_grasp(report, scene.target + 1, [o.name for o in scene.objects], start_z, s.lift_success_m)
        out.physics = PhysicsOutcome(verdict.held, verdict.reason, verdict.stage, verdict.details)
        out.parameters["sim_time_s"] = round(report.sim_time_s, 3)
        return out
