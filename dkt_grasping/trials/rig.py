"""The ``rig`` trial backend: a trial drives the running ROS 2 node graph (camera, depth, metric, grasp, planner, arm).

The graph must already run (``dkt-stack up cobot_magic`` / ``ros2 launch dkt_stack
cobot_magic.launch.py`` on the robot, ``dkt-stack up simulation`` without
hardware). On construction the backend checks it through its own rclpy Context
(``RosHarness``): the grasp node's ``detect`` service, clouds on ``/camera/points``,
joint states, and that depth_node's backend (diagnostics ``hardware_id``
``depth:<backend>``) is the session's depth method; anything else is a
:class:`RigUnavailableError` that says what is missing and how to start it.

A trial: capture (the first cloud whose stamp is after the trial began, the
metric depth of the same stamp, the colour frame nearest to it: the
snapshots) -> ``<ns>/grasp/detect`` -> planner_node plans on the grasps it publishes
(``joint_trajectory``, or a planner diagnostic refusal for this request) -> the arm
node executes (done when joint1..6 of ``joint_states`` reach the last trajectory point
within a tolerance; an arm diagnostic error fails it) -> the gripper joint of
``joint_states`` after a settle time is ``gripper_width_m``. The grasp is the one the
planner reports using (its diagnostics' ``grasp_index``), in the grasp node's base frame.
The depth and metric stages run continuously in their nodes, so they are timed together
as ``perception_latency`` (cloud arrival minus its camera stamp).

``spec.arm`` selects the arm: ``piper`` / ``simulated`` (the root-namespace arm, and its
backend is checked), ``left`` / ``right`` (the Cobot Magic arms in /left, /right, each with
its own grasp node), ``piper:left`` (both), or ``auto``: the graph's one grasp node
(``/grasp``, ``arms: [left, right]``) chooses the arm by reachability for every trial
(:mod:`dkt_grasping.arm_choice`), its ``~/detect`` reply names it (``left: 12 grasps; ...``),
and the trial follows that arm's planner and driver and records it (``parameters.arm_namespace``,
``grasp.arm``). ``weights_checksum()`` is ``n/a``: the weights live in depth_node's
process and it does not publish their checksum.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from dkt_grasping.arm import ARMS
from dkt_grasping.trials.backend import TrialAttempt
from dkt_grasping.trials.session import SessionSpec

START_HINT = (
    "start the graph first: `dkt-stack up cobot_magic backend:={method}` (or `ros2 launch dkt_stack cobot_magic.launch.py "
    "backend:={method}`) on the robot, or `dkt-stack up simulation backend:={method}` without hardware, in the same ROS_DOMAIN_ID"
)


class RigUnavailableError(RuntimeError):
    """No usable node graph: nothing running, a node missing, or a graph that does not match the session."""


@dataclass
class RigTimeouts:
    """Every wait of the rig backend (s) and the arrival tolerance (rad)."""

    graph_s: float = 10.0  # finding the running graph at start
    capture_s: float = 10.0  # a cloud stamped after the trial began
    detect_s: float = 30.0  # the detect service's answer
    planning_s: float = 30.0  # joint_trajectory or the planner's refusal
    acknowledge_s: float = 3.0  # the planner acknowledging the grasps; else they are published again
    detect_resends: int = 3  # at most this many re-publications of unacknowledged grasps
    execution_s: float = 60.0  # joint_states at the last trajectory point
    settle_s: float = 0.3  # after arriving, before reading the gripper
    joint_tolerance_rad: float = 0.02


#: ``spec.arm`` value letting the graph's grasp node choose the arm for each trial.
AUTO_ARM = "auto"


def arm_selection(arm: str) -> tuple[str | None, str | None]:
    """``spec.arm`` -> (namespace ``""``/``"/left"``, or None for ``auto``; arm backend to check or None); see the module docstring."""
    if arm == AUTO_ARM:
        return None, None
    if ":" in arm:
        backend, ns = arm.split(":", 1)
    else:
        backend, ns = (arm, "") if arm in ARMS or not arm else ("", arm)
    ns = ns.strip("/")
    if (backend and backend not in ARMS) or not all(c.isalnum() or c == "_" for c in ns):
        raise ValueError(f"rig arm must be piper, simulated, left, right, auto or BACKEND:NAMESPACE (e.g. piper:left), got {arm!r}")
    return (f"/{ns}" if ns else ""), (backend or None)


class _Inbox:
    """The newest ``maxlen`` messages of one topic, numbered in arrival order (seq from 1), with their arrival time (ns)."""

    def __init__(self, maxlen: int):
        self._items: collections.deque = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.seq = 0

    def __call__(self, msg) -> None:
        with self._lock:
            self.seq += 1
            self._items.append((self.seq, time.time_ns(), msg))

    def after(self, seq: int) -> list[tuple[int, int, object]]:
        with self._lock:
            return [item for item in self._items if item[0] > seq]


def _poll(find, timeout: float, period: float = 0.02):
    """``find()`` until it returns something other than None, or None after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (found := find()) is None and time.monotonic() < deadline:
        time.sleep(period)
    return found


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 2)


def _rounded(a, digits: int = 6) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


class RigTrialBackend:
    """Trials on the running node graph (see the module docstring)."""

    name = "rig"

    def __init__(self, spec: SessionSpec, timeouts: RigTimeouts | None = None):
        if spec.backend != "rig":
            raise ValueError(f"RigTrialBackend needs spec.backend == 'rig', got {spec.backend!r}")
        try:
            from diagnostic_msgs.msg import DiagnosticArray
            from geometry_msgs.msg import PoseArray
            from sensor_msgs.msg import Image, JointState, PointCloud2
            from std_msgs.msg import Float32MultiArray
            from std_srvs.srv import Trigger
            from trajectory_msgs.msg import JointTrajectory

            from dkt_stack.ros.harness import RosHarness
            from dkt_stack.ros.qos import qos_by_name
        except ImportError as exc:
            raise RigUnavailableError(f"the rig backend needs rclpy and the ROS 2 message packages (`make setup`): {exc}") from exc

        self.spec, self.t = spec, timeouts or RigTimeouts()
        self.ns, self.arm_backend = arm_selection(spec.arm)
        self._types = {"grasps": PoseArray, "grasp_info": Float32MultiArray, "joint_trajectory": JointTrajectory, "joint_states": JointState}
        self._Trigger = Trigger
        self.ros = RosHarness()
        node, sensor = self.ros.probe, qos_by_name("sensor_data")
        self._reliable = qos_by_name("reliable", depth=10)
        self.inbox = {"points": _Inbox(2), "colour": _Inbox(10), "depth": _Inbox(4), "diagnostics": _Inbox(500)}
        self.topics = {"points": "/camera/points", "colour": "/camera/camera/color/image_raw", "depth": "/camera/depth/metric", "diagnostics": "/diagnostics"}
        types = {"points": PointCloud2, "colour": Image, "depth": Image, "diagnostics": DiagnosticArray}
        for key, topic in self.topics.items():
            node.create_subscription(types[key], topic, self.inbox[key], sensor if key in ("points", "colour", "depth") else self._reliable)
        self.arm_inboxes: dict[str, dict[str, _Inbox]] = {}  # per arm namespace: grasps, grasp_info, joint_trajectory, joint_states
        self.detect_service = "/grasp/detect" if self.ns is None else f"{self.ns}/grasp/detect"
        self.detect = node.create_client(Trigger, self.detect_service)
        try:
            self.arm_namespaces = self._find_arms() if self.ns is None else [self.ns]
            for ns in self.arm_namespaces:
                self._listen_to_arm(ns)
            self._check_graph()
        except BaseException:
            self.close()
            raise

    def _listen_to_arm(self, ns: str) -> None:
        """Subscribe to one arm namespace's grasps, grasp_info, joint_trajectory and joint_states."""
        self.arm_inboxes[ns] = {"grasps": _Inbox(4), "grasp_info": _Inbox(4), "joint_trajectory": _Inbox(4), "joint_states": _Inbox(2000)}
        for key, box in self.arm_inboxes[ns].items():
            self.ros.probe.create_subscription(self._types[key], f"{ns}/{key}", box, self._reliable)

    def _find_arms(self) -> list[str]:
        """``auto``: the arms the graph's grasp node chooses between (its diagnostics' ``arms``), as namespaces."""
        hint = START_HINT.format(method=self.spec.method)
        status = _poll(lambda: self._latest_status("/grasp"), self.t.graph_s)
        arms = (_value(status, "arms") or "") if status is not None else ""
        names = [a for a in arms.split(",") if a]  # a one-arm grasp node reports its base frame: one name
        if status is None or len(names) < 2:
            found = "no /grasp diagnostics" if status is None else f"/grasp chooses between {arms or 'nothing'}"
            raise RigUnavailableError(
                f"--arm auto needs one grasp node /grasp choosing between two or more arms ({found}): start a two-arm graph "
                f"(`dkt-stack up cobot_magic` or `cobot_magic_sim`) or name the arm (--arm left); {hint}"
            )
        return [f"/{a}" for a in names]

    def _statuses(self, node_name: str, after: int = 0) -> list[tuple[int, object]]:
        """(seq, DiagnosticStatus) of one node (fully qualified name, e.g. /left/planner) since diagnostics seq ``after``."""
        return [
            (seq, s) for seq, _, arr in self.inbox["diagnostics"].after(after) for s in arr.status if s.name.partition(": ")[2] == node_name
        ]

    def _latest_status(self, node_name: str):
        found = self._statuses(node_name)
        return found[-1][1] if found else None

    def _check_graph(self) -> None:
        hint = START_HINT.format(method=self.spec.method)
        deadline = time.monotonic() + self.t.graph_s
        self.detect.wait_for_service(timeout_sec=self.t.graph_s)
        needs = {
            f"service {self.detect_service}": self.detect.service_is_ready,
            f"clouds on {self.topics['points']}": lambda: self.inbox["points"].seq > 0,
            "depth_node diagnostics (/camera/depth)": lambda: self._latest_status("/camera/depth") is not None,
            f"colour frames on {self.topics['colour']}": lambda: self.inbox["colour"].seq > 0,
        }
        probe = self.ros.probe
        for ns, box in self.arm_inboxes.items():
            needs[f"{ns}/joint_states"] = lambda box=box: box["joint_states"].seq > 0
            needs[f"planner diagnostics ({ns}/planner)"] = lambda ns=ns: self._latest_status(f"{ns}/planner") is not None
            needs[f"arm diagnostics ({ns}/arm)"] = lambda ns=ns: self._latest_status(f"{ns}/arm") is not None
            # The nodes must also see each other (discovery takes its own time per topic; a grasp published before
            # the planner subscribed is lost): each of these topics has this probe and one node of the graph on it.
            for key, who in (("grasps", "planner"), ("grasp_info", "planner"), ("joint_states", "planner"), ("joint_trajectory", "arm")):
                topic = f"{ns}/{key}"
                needs[f"{who} subscribed to {topic}"] = lambda topic=topic: probe.count_subscribers(topic) >= 2
        _poll(lambda: True if all(ok() for ok in needs.values()) else None, max(0.0, deadline - time.monotonic()))
        missing = [what for what, ok in needs.items() if not ok()]
        if missing:
            raise RigUnavailableError(f"no complete node graph found within {self.t.graph_s:g} s: missing {', '.join(missing)}; {hint}")
        depth_backend = self._latest_status("/camera/depth").hardware_id.partition(":")[2]
        if depth_backend != self.spec.method:
            raise RigUnavailableError(
                f"the running graph's depth_node uses depth backend {depth_backend!r} but the session's method is "
                f"{self.spec.method!r}: restart the graph with backend:={self.spec.method} or run the session with --method {depth_backend}"
            )
        backends = {ns: self._latest_status(f"{ns}/arm").hardware_id.partition(":")[2] for ns in self.arm_namespaces}
        for ns, arm_backend in backends.items():
            if self.arm_backend is not None and arm_backend != self.arm_backend:
                raise RigUnavailableError(
                    f"the running arm node {ns}/arm drives arm {arm_backend!r} but the session says {self.arm_backend!r}: "
                    f"run the session with --arm {arm_backend}{':' + ns.strip('/') if ns else ''} or start the graph with that arm"
                )
        self.arm_backend = ",".join(sorted(set(backends.values())))

    def weights_checksum(self) -> str:
        return "n/a"  # the weights are loaded by depth_node, which does not publish their checksum

    def close(self) -> None:
        if self.ros is not None:
            self.ros.close()
            self.ros = None

    def run_trial(self, trial_index: int, attempt: int, seed: int) -> TrialAttempt:
        """One trial on whatever the operator put in front of the camera; ``seed`` is recorded (the rig has no randomness)."""
        spec = self.spec
        target = spec.objects[trial_index % len(spec.objects)] if spec.objects else spec.surface
        out = TrialAttempt(target=target, seed=seed)
        out.parameters = {
            "arm": spec.arm, "arm_backend": self.arm_backend, "arm_namespace": self.ns, "depth_backend": spec.method,
            "detect_service": self.detect_service, "holding_threshold_m": spec.holding_threshold_m, "timeouts": asdict(self.t),
        }  # fmt: skip
        t_total = time.perf_counter()
        try:
            self._run(out)
        finally:
            out.timings_ms["total"] = _ms(t_total)
        return out

    def _fail(self, out: TrialAttempt, stage: str, reason: str) -> TrialAttempt:
        out.failure_stage, out.failure_reason = stage, reason
        return out

    def _run(self, out: TrialAttempt) -> TrialAttempt:
        from dkt_stack import conversions as cv

        t, box = self.t, self.inbox
        # -- capture: the first cloud stamped after the trial began; metric depth of that stamp, the colour frame nearest to it
        t0, start_ns, seqs = time.perf_counter(), time.time_ns(), {k: b.seq for k, b in box.items()}
        arm_seqs = {ns: {k: b.seq for k, b in boxes.items()} for ns, boxes in self.arm_inboxes.items()}
        found = _poll(lambda: next((i for i in box["points"].after(0) if cv.stamp_to_ns(i[2].header.stamp) >= start_ns), None), t.capture_s)
        out.timings_ms["capture"] = _ms(t0)
        if found is None:
            if not box["colour"].after(seqs["colour"]):
                return self._fail(out, "capture", f"no colour frame on {self.topics['colour']} within {t.capture_s:g} s (camera down?)")
            metric = self._latest_status("/camera/metric_depth")
            why = f"metric_depth_node says: {metric.message}" if metric is not None else "no metric_depth_node diagnostics"
            return self._fail(out, "metric_depth", f"no point cloud on {self.topics['points']} within {t.capture_s:g} s ({why})")
        _, arrived_ns, cloud = found
        stamp = cv.stamp_to_ns(cloud.header.stamp)
        out.timings_ms["perception_latency"] = round((arrived_ns - stamp) / 1e6, 2)
        xyz, rgb = cv.cloud_to_points(cloud)
        out.snapshots["cloud_xyz"] = xyz.astype(np.float32)
        if rgb is not None:
            out.snapshots["cloud_rgb"] = rgb
        depth = _poll(lambda: next((m for _, _, m in box["depth"].after(0) if cv.stamp_to_ns(m.header.stamp) == stamp), None), 1.0)
        if depth is not None:
            out.snapshots["depth_m"] = cv.image_to_numpy(depth).astype(np.float32)
        colours = box["colour"].after(0)
        if colours:
            colour = min((m for _, _, m in colours), key=lambda m: abs(cv.stamp_to_ns(m.header.stamp) - stamp))
            out.snapshots["rgb"] = cv.to_rgb8(cv.image_to_numpy(colour), colour.encoding)
            out.parameters["colour_offset_ms"] = round((cv.stamp_to_ns(colour.header.stamp) - stamp) / 1e6, 2)
        out.parameters["cloud_points"], out.parameters["cloud_stamp_ns"] = len(xyz), stamp
        # -- grasp detection on the grasp node's latest cloud
        t0, diag0 = time.perf_counter(), box["diagnostics"].seq
        before = {ns: (self._latest_status(f"{ns}/arm"), self._latest_status(f"{ns}/planner")) for ns in self.arm_namespaces}
        try:
            reply = self.ros.call(self.detect, self._Trigger.Request(), timeout=t.detect_s)
            while not reply.success and reply.message.startswith("no cloud received yet") and _ms(t0) < 1000 * t.capture_s:
                time.sleep(0.2)  # a freshly started grasp node has not been matched with the cloud publisher yet
                reply = self.ros.call(self.detect, self._Trigger.Request(), timeout=t.detect_s)
        except TimeoutError as exc:
            out.timings_ms["grasp_detection"] = _ms(t0)
            return self._fail(out, "grasp_detection", str(exc))
        if not reply.success:
            out.timings_ms["grasp_detection"] = _ms(t0)
            return self._fail(out, "grasp_detection", f"{self.detect_service}: {reply.message}")
        ns = self.ns if self.ns is not None else self._chosen_arm(reply.message)
        if ns is None:
            out.timings_ms["grasp_detection"] = _ms(t0)
            return self._fail(out, "grasp_detection", f"{self.detect_service} did not name one of the arms {self.arm_namespaces}: {reply.message}")
        out.parameters["arm_namespace"] = ns
        abox, aseqs = self.arm_inboxes[ns], arm_seqs[ns]
        arm0, planner0 = before[ns]
        request0 = int(_value(planner0, "plan_request") or 0) if planner0 is not None else 0
        poses = _poll(lambda: next(iter(abox["grasps"].after(aseqs["grasps"])), None), 5.0)
        info = _poll(lambda: next(iter(abox["grasp_info"].after(aseqs["grasp_info"])), None), 5.0)
        out.timings_ms["grasp_detection"] = _ms(t0)
        if poses is None or info is None:
            return self._fail(out, "grasp_detection", f"{reply.message} reported, but nothing on {ns}/grasps within 5 s")
        frame, mats = poses[2].header.frame_id, cv.pose_array_to_matrices(poses[2])
        rows = np.asarray(info[2].data, dtype=np.float64).reshape(-1, 3)
        out.parameters["grasps_found"], out.parameters["grasp_frame"] = len(mats), frame
        # -- planning: planner_node plans on those grasps; it refuses with a diagnostic numbered by plan_request
        t0, planner = time.perf_counter(), f"{ns}/planner"

        def this_request(s) -> bool:  # a status about the plan for these grasps, not a stale one repeated once a second
            return int(_value(s, "plan_request") or 0) > request0

        def refusal():
            return next((s for _, s in self._statuses(planner, diag0) if _level(s) > 0 and this_request(s)), None)

        def acknowledged() -> bool:
            return any(this_request(s) for _, s in self._statuses(planner, diag0))

        def plan_or_refusal():
            return next(iter(abox["joint_trajectory"].after(aseqs["joint_trajectory"])), None) or refusal()

        # The planner acknowledges a request before planning; grasps lost between two nodes (discovery still under
        # way) are never acknowledged, so publish them again (never when acknowledged: that would plan twice).
        for _ in range(t.detect_resends):
            if _poll(lambda: True if acknowledged() or plan_or_refusal() else None, t.acknowledge_s):
                break
            out.parameters["detect_resends"] = out.parameters.get("detect_resends", 0) + 1
            aseqs["grasps"], aseqs["grasp_info"] = abox["grasps"].seq, abox["grasp_info"].seq
            self.ros.call(self.detect, self._Trigger.Request(), timeout=t.detect_s)
        traj = _poll(plan_or_refusal, t.planning_s)
        out.timings_ms["planning"] = _ms(t0)
        if traj is None or not isinstance(traj, tuple):
            if traj is not None:
                out.parameters["plan_request"] = int(_value(traj, "plan_request"))
            last = self._latest_status(planner)
            reason = traj.message if traj is not None else f"no {ns}/joint_trajectory within {t.planning_s:g} s"
            return self._fail(out, "planning", reason if traj is not None else f"{reason} (planner says: {last and last.message})")
        states0 = abox["joint_states"].seq
        names, times, pos, _, _ = cv.joint_trajectory_to_arrays(traj[2])
        closing = np.flatnonzero(np.diff(pos[:, -1]) < 0)
        out.trajectory = {
            "joints": names, "points": len(times), "duration_s": round(float(times[-1]), 4),
            "q_start_rad": _rounded(pos[0, :6]), "q_grasp_rad": _rounded(pos[closing[0] + 1, :6]) if closing.size else None,
            "q_end_rad": _rounded(pos[-1, :6]), "gripper_open_m": round(float(pos[:, -1].max()), 5),
            "gripper_close_m": round(float(pos[-1, -1]), 5),
        }  # fmt: skip
        # -- execution: joint1..6 at the last point (the gripper stops on the object, not at its command), or an arm error
        t0, arm = time.perf_counter(), f"{ns}/arm"
        goal = pos[-1, :6]

        checked = [states0]

        def arrived():
            for seq, _, m in abox["joint_states"].after(checked[0]):
                checked[0] = seq
                if not set(names[:6]) <= set(m.name):
                    continue  # not this arm's full state
                q = np.array([m.position[list(m.name).index(n)] for n in names[:6]])
                if np.max(np.abs(q - goal)) <= t.joint_tolerance_rad:
                    return m
            return None

        def arm_error():
            return next(
                (s for _, s in self._statuses(arm, diag0) if (_level(s) >= 2 or s.message.startswith("joint_trajectory rejected"))
                 and (arm0 is None or s.message != arm0.message)), None,
            )  # fmt: skip

        done = _poll(lambda: arrived() or arm_error(), t.execution_s)
        if done is None or not hasattr(done, "position"):
            out.timings_ms["execution"] = _ms(t0)
            return self._fail(
                out, "execution", done.message if done is not None else f"arm not at the last point after {t.execution_s:g} s"
            )
        time.sleep(t.settle_s)
        final = abox["joint_states"].after(states0)[-1][2]
        out.timings_ms["execution"] = _ms(t0)
        out.gripper_width_m = round(float(final.position[list(final.name).index(names[-1])]), 5)
        out.parameters["final_q_rad"] = _rounded([final.position[list(final.name).index(n)] for n in names[:6]])
        # -- which grasp: the planner's diagnostics name it (published once a second); else assume the best one
        used = _poll(
            lambda: next((s for _, s in self._statuses(planner, diag0) if this_request(s) and _value(s, "grasp_index") is not None), None),
            2.0,
        )
        index = int(_value(used, "grasp_index")) if used is not None else 0
        out.parameters["plan_request"] = int(_value(used, "plan_request")) if used is not None else None
        out.grasp = {
            "arm": ns.strip("/") or self.arm_backend, "pose_base": _rounded(mats[index]), "frame": frame, "width_m": round(float(rows[index, 0]), 5),
            "score": round(float(rows[index, 1]), 5), "depth_m": round(float(rows[index, 2]), 5), "grasp_index": index,
            "grasp_index_from": "planner diagnostics" if used is not None else "unknown (assumed the best grasp)",
        }  # fmt: skip
        return out


    def _chosen_arm(self, message: str) -> str | None:
        """The arm namespace a two-arm grasp node's ``~/detect`` reply names (``left: 12 grasps; ...``), or None."""
        name = message.partition(":")[0].strip()
        return f"/{name}" if f"/{name}" in self.arm_namespaces else None


def _level(status) -> int:
    """0 OK, 1 WARN, 2 ERROR, 3 STALE (rclpy gives the byte field as bytes)."""
    return status.level[0] if isinstance(status.level, bytes) else int(status.level)


def _value(status, key: str) -> str | None:
    return next((kv.value for kv in status.values if kv.key == key), None)
