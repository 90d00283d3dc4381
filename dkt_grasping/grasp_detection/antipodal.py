"""Open CPU grasp detector: antipodal sampling on a point cloud with normals.

Pipeline (all in the robot base frame, metres):

1. crop the cloud to the workspace (plus a margin, so obstacles just outside
   still block the fingers), voxel-downsample, estimate normals (open3d) and
   orient them towards the camera;
2. find the table with RANSAC (:func:`~dkt_grasping.grasp_detection.tabletop.segment_tabletop`);
   points higher than ``object_min_height`` above it are object points (the table stays in the collision scene); with an
   operator ``target`` (a mask over the cloud: the object to grasp), the scene
   points near its points are the target's;
3. sample seed points on the objects (on the target only, when there is one)
   and build candidate gripper frames, each with its closing axis first and
   approaches about it (from top-down, turned by ``approach_angles_deg``, and
   *leaning toward the arm base*: the gripper's back tilted toward the base,
   which a 6-DoF arm with a +-70 deg wrist reaches far better than straight
   down away from its base):

   * *antipodal pairs*: a second contact across the object whose normal
     opposes the seed's within the friction cone; closing axis = the line;
   * *along the seen normal*: a seed on a side surface, the pad flat on it;
   * *across the outline*: where the object, seen from above at the fingers'
     reach, is narrowest between two bounding lines the camera saw (a box
     across its faces, a cylinder through its axis: the far side of a
     cylinder is hidden, a width to it is a chord), the grasp centred
     between them;

4. evaluate every candidate against the PiPER gripper model in one batch,
   each at the fixed depths or, where the palm would meet the object first,
   slid forward only until it does: the pads close on the stretch of points
   around the seed up to a gap a finger can enter where the camera saw
   empty space (a cup's wall, one finger inside the cup), which must fit the
   opening (``width_margin`` each side, down to ``min_width_margin``),
   fingers, palm and body must be free of points and above the table, and
   with a target most points between the pads must be the target's;
5. the contacts: a side seen squarely must lie in the friction cone, a side
   not seen is taken only where that finger's place was seen empty, a frame
   across the outline must close on the width it was chosen for with the
   outline square beside the pads;
6. score = antipodality of the contacts, approach versus the table normal,
   finger clearance and depth; non-maximum suppression; best first.

What the arm can reach is decided after, by
:class:`~dkt_grasping.grasp_detection.executable.ExecutableGraspDetector`, on
every candidate (``grasps_per_seed`` 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from dkt_grasping.grasp import Grasp, grasp_nms
from dkt_grasping.grasp_detection.base import EmptyCloudError, check_cloud, check_target, check_transform
from dkt_grasping.grasp_detection.tabletop import TabletopScene, segment_tabletop
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.config import param
from dkt_stack.transforms import cross3, transform_points


@dataclass
class AntipodalConfig:
    """Parameters of the antipodal grasp sampler (lengths in metres, angles in degrees)."""

    gripper: GripperConfig = param(default_factory=GripperConfig, help="PiPER gripper geometry")
    voxel_size: float = param(0.005, help="voxel size of the downsampled cloud (m)")
    normal_radius: float = param(0.015, help="neighbourhood radius for normal estimation (m)")
    normal_max_neighbours: int = param(30, help="max neighbours for normal estimation")
    num_seeds: int = param(160, help="seed points sampled on the objects")
    friction_angle_deg: float = param(25.0, help="half-angle of the friction cone for antipodal contacts (deg)")
    approach_angles_deg: list[float] = param(
        default_factory=lambda: [0.0, 30.0, -30.0, 60.0, -60.0], help="approach tilts about the closing axis, from top-down (deg)"
    )
    closing_sweep_deg: float = param(
        15.0, help="closing directions swept in this step to find where the outline seen from above is narrowest (deg)"
    )
    base_lean_deg: list[float] = param(
        default_factory=lambda: [20.0, 35.0, 50.0],
        help="extra approaches per seed tilted from top-down (or from the surface normal) toward the arm base's side, "
        "i.e. pointing down and away from the base (deg); empty = none",
    )
    candidate_nms_translation: float = param(
        0.004, help="light NMS before the reachability check: centres closer than this are duplicates (m)"
    )
    candidate_nms_rotation_deg: float = param(10.0, help="light NMS before the reachability check: orientation threshold (deg)")
    depths: list[float] = param(default_factory=lambda: [0.025, 0.012], help="grasp depths tried: fingertips beyond the grasp centre (m)")
    width_margin: float = param(0.005, help="extra opening on each side of the object (m)")
    min_width_margin: float = param(
        0.002, help="an object too wide for width_margin is still taken, the gripper fully open, if this much is left on each side (m)"
    )
    min_points_in_gripper: int = param(6, help="object points required between the fingers")
    table_distance: float = param(0.006, help="RANSAC inlier distance for the table plane (m)")
    max_table_tilt_deg: float = param(25.0, help="largest angle between the table normal and base z (deg)")
    object_min_height: float = param(0.008, help="points this far above the table are objects (m)")
    min_antipodality: float = param(
        0.2,
        help="reject grasps whose contact normals do not oppose along the closing axis (0..1: 0.5 = one side's "
        "normal exactly opposed); catches grasps whose sides were never seen by the camera",
    )
    weight_antipodal: float = param(0.45, help="score weight of contact antipodality")
    weight_approach: float = param(0.3, help="score weight of approaching against the table normal")
    weight_clearance: float = param(0.15, help="score weight of finger clearance")
    weight_depth: float = param(0.1, help="score weight of grasp depth")
    clearance_reference: float = param(0.01, help="clearance (m) that earns the full clearance score")
    nms_translation: float = param(0.01, help="NMS: centres closer than this are duplicates (m)")
    nms_rotation_deg: float = param(30.0, help="NMS: orientations closer than this are duplicates (deg)")
    max_grasps: int = param(40, help="grasps returned at most")
    grasps_per_seed: int = param(
        0, help="best candidates kept per seed point before NMS, each approaching at least 15 deg apart from the others; 0 = all "
        "(the default: which ones the arm reaches is decided after, by the reachability check)"
    )
    table_clearance: float = param(0.003, help="gripper parts must stay this far above the table plane (m)")
    max_normal_closing_tilt: float = param(
        0.4, help="seeds whose normal is this close to horizontal (|normal . down| below it) get grasps closing along the normal, "
        "and across the outline at their height"
    )
    min_top_facing: float = param(
        0.7, help="seeds whose normal faces up this much (normal . up) also get grasps closing where the outline seen from above is narrowest"
    )
    min_target_fraction: float = param(
        0.8, help="with an operator target: share of the object points between the fingers that must be the target's (0..1)"
    )
    seed: int = param(0, help="random seed (seed sampling and RANSAC)")

    def __post_init__(self):
        if self.voxel_size <= 0 or self.normal_radius <= 0:
            raise ValueError("voxel_size and normal_radius must be > 0 m")
        if not self.depths or min(self.depths) < 0 or max(self.depths) >= self.gripper.finger_length:
            raise ValueError(f"depths must be in [0, finger_length={self.gripper.finger_length}) m, got {self.depths}")
        if self.grasps_per_seed < 0:
            raise ValueError(f"grasps_per_seed must be >= 0 (0 = all), got {self.grasps_per_seed}")
        if self.num_seeds < 1 or self.max_grasps < 1:
            raise ValueError("num_seeds and max_grasps must be >= 1")
        if not 1.0 <= self.closing_sweep_deg <= 90.0:
            raise ValueError(f"closing_sweep_deg must be in [1, 90] deg, got {self.closing_sweep_deg}")
        if not 0.0 <= self.min_width_margin <= self.width_margin:
            raise ValueError(f"min_width_margin must be in [0, width_margin={self.width_margin}] m, got {self.min_width_margin}")
        if not 0.0 <= self.min_target_fraction <= 1.0:
            raise ValueError(f"min_target_fraction must be in [0, 1], got {self.min_target_fraction}")


def _distinct_approaches(grasps: list[Grasp], n: int, min_angle_deg: float = 15.0) -> list[Grasp]:
    """The first ``n`` of ``grasps`` (best first) whose approach directions differ pairwise by ``min_angle_deg`` or more."""
    cos_min, kept = np.cos(np.deg2rad(min_angle_deg)), []
    for g in grasps:
        if all(g.approach @ k.approach < cos_min for k in kept):
            kept.append(g)
            if len(kept) >= n:
                break
    return kept


def _perpendicular(v: np.ndarray, hint: np.ndarray) -> np.ndarray | None:
    """Unit vector: ``hint`` made orthogonal to unit ``v``; None when they are nearly parallel."""
    p = hint - (hint @ v) * v
    n = np.linalg.norm(p)
    return p / n if n > 0.2 else None


class AntipodalGraspDetector:
    """CPU grasp detector for the PiPER gripper; see the module docstring for the method."""

    def __init__(self, config: AntipodalConfig | None = None):
        self.config = config or AntipodalConfig()

    # -- scene ---------------------------------------------------------------------------------
    def prepare_scene(self, points_base: np.ndarray, camera_position: np.ndarray) -> TabletopScene:
        """Downsample, estimate normals and find the table (:func:`segment_tabletop` with this config). points_base: Nx3 base frame (m)."""
        c = self.config
        return segment_tabletop(
            points_base, camera_position, voxel_size=c.voxel_size, normal_radius=c.normal_radius,
            normal_max_neighbours=c.normal_max_neighbours, table_distance=c.table_distance,
            max_table_tilt_deg=c.max_table_tilt_deg, object_min_height=c.object_min_height, seed=c.seed,
        )  # fmt: skip

    # -- detection -----------------------------------------------------------------------------
    def detect(
        self, points: np.ndarray, colors: np.ndarray | None, T_base_camera: np.ndarray, workspace: WorkspaceLimits, target: np.ndarray | None = None
    ) -> list[Grasp]:
        """Grasps (base frame, PiPER gripper convention) sorted by score.

        points: float Nx3 camera optical frame (m); colors: uint8 Nx3 or None
        (unused); T_base_camera: 4x4 camera-to-base; workspace: base-frame box
        for the grasp centres; target: bool (N,) over points or None, the
        operator's object: seeds are drawn on it and a grasp is kept only when
        at least ``min_target_fraction`` of the object points between its
        fingers are the target's. Raises EmptyCloudError when nothing is usable.
        """
        return self.select(self.candidates(points, colors, T_base_camera, workspace, target))

    def candidates(
        self, points: np.ndarray, colors: np.ndarray | None, T_base_camera: np.ndarray, workspace: WorkspaceLimits, target: np.ndarray | None = None
    ) -> list[Grasp]:
        """Every checked grasp candidate before the final NMS (same arguments as :meth:`detect`), best first."""
        pts_cam, _ = check_cloud(points, colors)
        on_target = check_target(target, points)
        T = check_transform(T_base_camera)
        pts = transform_points(T, pts_cam)
        inside = workspace.contains(pts)
        if not inside.any():
            raise EmptyCloudError(
                f"none of the {len(pts)} points lies inside the workspace "
                f"x[{workspace.x_min}, {workspace.x_max}] y[{workspace.y_min}, {workspace.y_max}] z[{workspace.z_min}, {workspace.z_max}] m (base frame)"
            )
        margin = self.config.gripper.flange_to_fingertip
        context = np.all((pts >= workspace.lower - margin) & (pts <= workspace.upper + margin), axis=1)
        scene = self.prepare_scene(pts[context], T[:3, 3])
        if on_target is not None:
            scene.mark_target(pts[on_target], self.config.voxel_size)
        return self.candidates_in_scene(scene, workspace)

    def select(self, grasps: list[Grasp]) -> list[Grasp]:
        """The final non-maximum suppression: best of each cluster, at most ``max_grasps``, best first."""
        cfg = self.config
        return grasp_nms(grasps, cfg.nms_translation, np.deg2rad(cfg.nms_rotation_deg), max_keep=cfg.max_grasps)

    def grasps_in_scene(self, scene: TabletopScene, workspace: WorkspaceLimits) -> list[Grasp]:
        """:meth:`detect` on a prepared scene."""
        return self.select(self.candidates_in_scene(scene, workspace))

    def candidates_in_scene(self, scene: TabletopScene, workspace: WorkspaceLimits) -> list[Grasp]:
        """Candidates of a prepared scene: the best few per seed, lightly de-duplicated, best first."""
        cfg, g = self.config, self.config.gripper
        rng = np.random.default_rng(cfg.seed)
        P, N = scene.points, scene.normals
        seedable = scene.object_mask & workspace.contains(P)
        if scene.target_mask is not None:
            seedable &= scene.target_mask
        candidates_idx = np.flatnonzero(seedable)
        if len(candidates_idx) == 0:
            return []
        seeds = rng.choice(candidates_idx, size=min(cfg.num_seeds, len(candidates_idx)), replace=False)
        obj_idx = np.flatnonzero(scene.object_mask)
        tree_obj = cKDTree(P[obj_idx])
        cos_f = np.cos(np.deg2rad(cfg.friction_angle_deg))
        down = -scene.table_normal
        reach = g.flange_to_fingertip + g.max_opening
        # The table is handled as a plane; only object points are tested point-wise.
        neighbourhoods = tree_obj.query_ball_point(P[seeds], r=reach)
        plane = None if np.isnan(scene.table_offset) else (scene.table_normal, scene.table_offset)
        grasps: list[Grasp] = []
        outlines: set = set()  # outline frames already tried: seeds on one object mostly find the same ones
        for s, local_list in zip(seeds, neighbourhoods):
            local = obj_idx[np.asarray(local_list, dtype=int)]
            near = local[np.einsum("ij,ij->i", P[local] - P[s], P[local] - P[s]) < g.max_opening**2]  # within one opening
            frames = self._candidate_frames(P[s], N[s], P[near], N[near], down, cos_f, outlines)
            if not frames:
                continue
            found = self._evaluate(frames, P[local], N[local], down, plane, None if scene.target_mask is None else scene.target_mask[local], scene)
            grasps.extend(_distinct_approaches(sorted(found, key=lambda gr: -gr.score), cfg.grasps_per_seed) if cfg.grasps_per_seed else found)
        grasps = [gr for gr in grasps if workspace.contains(gr.position)]
        return grasp_nms(grasps, cfg.candidate_nms_translation, np.deg2rad(cfg.candidate_nms_rotation_deg))

    def lean_variants(self, grasps: list[Grasp], scene: TabletopScene) -> list[tuple[int, Grasp]]:
        """For grasps found by another detector: the same contacts approached leaning toward the base.

        Each grasp's approach is tilted about its closing axis by ``base_lean_deg``
        toward pointing away from the base; the variants go through this
        detector's gripper checks on ``scene`` (points between the fingers, no
        collision, above the table) and carry this detector's score.
        """
        if not grasps or not self.config.base_lean_deg:
            return []
        obj = scene.points[scene.object_mask]
        obj_normals = scene.normals[scene.object_mask]
        if len(obj) == 0:
            return []
        down = -scene.table_normal
        plane = None if np.isnan(scene.table_offset) else (scene.table_normal, scene.table_offset)
        tree = cKDTree(obj)
        reach = self.config.gripper.flange_to_fingertip + self.config.gripper.max_opening
        out = []
        for i, g in enumerate(grasps):
            y, centre = g.closing, g.position
            frames = []
            for lean in self._lean_directions(centre, g.approach, down):
                z = _perpendicular(y, lean)
                if z is not None:
                    frames.append((centre, np.column_stack([cross3(y, z), y, z]), np.nan, np.nan))
            local = np.asarray(tree.query_ball_point(centre, r=reach), dtype=int)
            if frames and len(local):
                out.extend((i, v) for v in self._evaluate(frames, obj[local], obj_normals[local], down, plane))
        return out

    def _lean_directions(self, p: np.ndarray, reference: np.ndarray, down: np.ndarray) -> list[np.ndarray]:
        """Unit approaches tilted from ``reference`` by each ``base_lean_deg`` toward pointing away from the base.

        p: the contact (base frame, m); the base sits at the origin, so "away" is
        the horizontal direction from the origin to p.
        """
        away = np.array([p[0], p[1], 0.0])
        away -= (away @ down) * down
        norm = np.linalg.norm(away)
        if norm < 1e-6:
            return []
        away /= norm
        side = away - (away @ reference) * reference
        norm = np.linalg.norm(side)
        if norm < 0.2:  # reference already (nearly) horizontal and along "away": no lean to add
            return []
        side /= norm
        return [reference * np.cos(t) + side * np.sin(t) for t in np.deg2rad(self.config.base_lean_deg)]

    def _approaches_about(self, centre: np.ndarray, y: np.ndarray, down: np.ndarray) -> list[np.ndarray]:
        """Unit approaches perpendicular to the closing axis ``y``: from top-down (or, for a vertical ``y``, horizontal and
        away from the robot base) turned about ``y`` by ``approach_angles_deg``, plus the lean toward the base."""
        base = _perpendicular(y, down)
        if base is None:  # closing axis vertical: approach horizontally, away from the robot base
            base = _perpendicular(y, np.array([centre[0], centre[1], 0.0]) + 1e-9)
        if base is None:
            return []
        side = cross3(y, base)
        approaches = [base * np.cos(a) + side * np.sin(a) for a in np.deg2rad(self.config.approach_angles_deg)]
        # Leaning toward the base: the lean directions projected into the plane the closing axis allows.
        for lean in self._lean_directions(centre, base, down):
            z = _perpendicular(y, lean)
            if z is not None and max(z @ a for a in approaches) < np.cos(np.deg2rad(8.0)):  # not a near-duplicate
                approaches.append(z)
        return approaches

    def _candidate_frames(self, p, n, Q, NQ, down, cos_f, outlines: set | None = None) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
        """(centre, R, anchor, outline width) candidates for one seed point p with outward normal n (base frame); Q, NQ:
        the object points within one opening of it and their normals; outlines: keys of the outline frames
        other seeds already produced (skipped, then added to).

        anchor: where the seed lies on the closing axis (gripper y, m from the centre): the fingers close on the
        stretch of points around it (a cup's wall, not the cup), NaN: on everything between them. outline width:
        the width (m) where the outline seen from above is narrowest, when the closing axis was chosen there; NaN
        otherwise.
        """
        cfg, g = self.config, self.config.gripper
        frames = []
        # Antipodal pair: nearest opposing contact q inside both friction cones; closing axis = the contact line.
        if len(Q):
            d = Q - p
            dist = np.sqrt(np.einsum("ij,ij->i", d, d))
            u = d / np.maximum(dist, 1e-9)[:, None]
            ok = (dist > 1e-3) & (dist <= g.max_opening - 2 * cfg.width_margin) & (u @ -n > cos_f) & (np.einsum("ij,ij->i", NQ, u) > cos_f)
            if ok.any():
                k = np.flatnonzero(ok)[np.argmin(dist[ok])]
                y, centre = u[k], (p + Q[k]) / 2
                frames += [(centre, np.column_stack([cross3(y, z), y, z]), np.nan, np.nan) for z in self._approaches_about(centre, y, down)]
        # Closing along the seed's normal (a pad flat on the seen surface: exactly antipodal on a box face or a
        # cylinder, whatever the far side looks like).
        if abs(n @ down) < cfg.max_normal_closing_tilt:
            frames += [(p, np.column_stack([cross3(n, z), n, z]), 0.0, np.nan) for z in self._approaches_about(p, n, down)]
        # On a seed of a surface facing up or sideways: closing where the object's outline seen from above, at the
        # fingers' reach from the seed, is narrowest (a box across two faces, a disc or cylinder through its axis),
        # with the approaches about that (horizontal) closing axis; not from below the table.
        if -n @ down > cfg.min_top_facing or abs(n @ down) < cfg.max_normal_closing_tilt:
            for centre, y, width in self._narrowest_closings(p, down, Q, NQ, down):
                key = (*np.round(centre / cfg.voxel_size).astype(int), int(np.round(np.degrees(np.arctan2(y[1], y[0])) % 180 / cfg.closing_sweep_deg)))
                if outlines is not None:
                    if key in outlines:
                        continue
                    outlines.add(key)
                frames += [
                    (centre, np.column_stack([cross3(y, z), y, z]), np.nan, width) for z in self._approaches_about(centre, y, down) if z @ down > -0.25
                ]
        return frames

    def _narrowest_closings(
        self, p: np.ndarray, z: np.ndarray, Q: np.ndarray, NQ: np.ndarray, down: np.ndarray, keep: int = 2
    ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """(centre, closing axis, width m) perpendicular to the approach ``z`` across which the object at seed ``p``
        is narrowest.

        Sweeps the closing direction in ``closing_sweep_deg`` steps and measures the object's width along it:
        the spread of the points Q (base frame, within one opening of the seed) at the fingers' reach along
        ``z``. Returns the ``keep`` narrowest local minima that fit the opening (where the width barely changes,
        one of them across the direction away from the arm base), each centred between the two lines that bound
        the object there, midway along the contacts on them. For an outline extruded along
        the approach a width minimum is an antipodal pair (a box across two faces, a disc through its centre),
        even where the camera saw neither side's face. A width counts only where the camera saw both bounding
        lines: points on each facing out along the closing axis, or the edge of a surface seen from above; the
        far side of a bottle hides behind its front and is not a line the width can be measured to.
        """
        cfg, g = self.config, self.config.gripper
        d = Q - p
        zs = d @ z
        depth = max(cfg.depths)
        reach = (zs > depth - g.finger_length) & (zs < depth)
        d, n = d[reach], NQ[reach]
        if len(d) < cfg.min_points_in_gripper:
            return []
        ref = _perpendicular(z, np.array([1.0, 0.0, 0.0]))
        if ref is None:
            ref = _perpendicular(z, np.array([0.0, 1.0, 0.0]))
        angles = np.deg2rad(np.arange(0.0, 180.0, cfg.closing_sweep_deg))
        Y = np.cos(angles)[:, None] * ref + np.sin(angles)[:, None] * cross3(z, ref)  # (A, 3)
        ys = Y @ d.T  # (A, M)
        lo, hi = ys.min(axis=1), ys.max(axis=1)
        width = hi - lo
        ny, up = Y @ n.T, n @ -down  # (A, M), (M,)
        seen = np.ones(len(Y), dtype=bool)
        for sign, line in ((1.0, ys > hi[:, None] - cfg.voxel_size), (-1.0, ys < lo[:, None] + cfg.voxel_size)):
            facing = np.where(line, sign * ny, -1.0).max(axis=1) >= 0.85
            top_edge = np.where(line, up[None], -1.0).max(axis=1) >= 0.7
            seen &= facing | top_edge
        width = np.where(seen, width, np.inf)  # a width to a line the camera did not see is a lower bound, no measure
        fits = width + 2 * cfg.min_width_margin <= g.max_opening
        minimum = fits & (width <= np.roll(width, 1)) & (width <= np.roll(width, -1))  # the sweep is cyclic: y and -y are one axis
        chosen = [i for i in np.argsort(width, kind="stable") if minimum[i]][:keep]
        # Where the width barely changes (a disc, a cylinder seen along its axis) any of those directions will do:
        # take the one across the direction away from the arm base too, so the approach can lean toward the base.
        away = np.array([p[0], p[1], 0.0])
        near = np.flatnonzero(fits & (width <= width.min() + cfg.voxel_size))
        if len(near) and np.linalg.norm(away) > 1e-6:
            across = int(near[np.argmin(np.abs(Y[near] @ away))])
            if across not in chosen:
                chosen = [*chosen[: keep - 1], across]
        out = []
        for i in chosen:
            X = cross3(Y[i], z)
            xs = d @ X
            on_lines = (ys[i] < lo[i] + cfg.voxel_size) | (ys[i] > hi[i] - cfg.voxel_size)
            centre = p + X * xs[on_lines].mean() + Y[i] * (lo[i] + hi[i]) / 2
            out.append((centre, Y[i], float(width[i])))
        return out

    def _evaluate(self, frames, Q, NQ, down, plane, target=None, scene: TabletopScene | None = None) -> list[Grasp]:
        """Check and score all (frame, depth) candidates of one seed.

        Q, NQ: nearby object points and normals (base frame); plane: table
        (unit normal, offset) or None; target: bool per point of Q (the
        operator's object) or None; scene: for its free-space test (without
        it a finger never goes into a gap between points).
        """
        cfg, g = self.config, self.config.gripper
        depths = np.asarray(sorted(cfg.depths, reverse=True))
        C = np.array([f[0] for f in frames])
        R = np.array([f[1] for f in frames])
        # Points in each candidate gripper frame: (F, M, 3); depth only shifts the boxes along z.
        L = (Q[None] - C[:, None]) @ R
        # Each frame also gets the deepest reach that keeps the palm and body just behind the points under them
        # (the hand slid forward until it meets the object, as far as it goes): a grasp on the top of a side
        # seen lower down, under a box's lid or a cup's rim.
        # A fixed depth beyond that reach would put the palm into the object: it becomes that reach (once).
        fit = self._contact_depth(L)[:, None]
        depth_table = np.minimum(np.tile(depths, (len(frames), 1)), fit)  # (F, nd), deepest first
        depth_table[:, 1:][depth_table[:, 1:] >= depth_table[:, :-1] - 1e-4] = np.nan  # a duplicate of the one before
        nd = depth_table.shape[1]
        # Rows: (frame, depth) candidates, dropped as soon as a check fails; columns: the points.
        rows = np.flatnonzero(np.isfinite(depth_table.reshape(-1)))
        fi = rows // nd
        xs, y, z, ny = L[fi, :, 0], L[fi, :, 1], L[fi, :, 2], (NQ @ R[fi, :, 1].T).T
        x = np.abs(xs)
        dep = depth_table.reshape(-1)[rows][:, None]
        anchors = np.array([f[2] for f in frames])[fi]
        outline_width = np.array([f[3] for f in frames], dtype=np.float64)[fi]
        outline = ~np.isnan(outline_width)
        Rk, Ck = R[fi], C[fi]
        in_x = x < g.finger_width / 2
        in_z = (z > dep - g.finger_length) & (z < dep)
        # Between the fingers: around the centre; for a frame anchored at its seed, anywhere the seed's stretch may go.
        window = np.where(np.isnan(anchors), g.max_opening / 2, g.max_opening)
        region = in_x & in_z & (np.abs(y) < window[:, None])
        cols = np.flatnonzero(region.any(axis=0))  # the span only looks at points between some pair of fingers
        ymin, ymax = self._closing_span(np.where(region[:, cols], y[:, cols], np.nan), anchors, Ck, Rk, dep[:, 0], scene)
        region &= (y >= ymin[:, None]) & (y <= ymax[:, None])  # what the pads close on; the rest must clear the fingers
        count = region.sum(axis=1)
        # the preferred margin each side, or what is left of the opening when that is less (not below min_width_margin)
        opening = np.minimum(ymax - ymin + 2 * cfg.width_margin, np.maximum(g.max_opening, ymax - ymin + 2 * cfg.min_width_margin))
        valid = (count >= cfg.min_points_in_gripper) & (opening <= g.max_opening)
        valid &= (ymin > -window + cfg.voxel_size) & (ymax < window - cfg.voxel_size)  # else the object may go on past the window
        # a frame chosen by the outline's width must close on that width, not on a narrower slice (a disc's edge)
        valid &= ~outline | (ymax - ymin >= outline_width - cfg.voxel_size)
        if target is not None:  # the fingers must close on the operator's object, not on a neighbour
            valid &= (region & target[None, :]).sum(axis=1) >= cfg.min_target_fraction * count

        def keep(mask):
            nonlocal xs, x, y, z, ny, dep, anchors, outline, outline_width, Rk, Ck, in_x, in_z, region, ymin, ymax, opening, count, fi
            xs, x, y, z, ny, dep, anchors, outline = xs[mask], x[mask], y[mask], z[mask], ny[mask], dep[mask], anchors[mask], outline[mask]
            outline_width = outline_width[mask]
            Rk, Ck, in_x, in_z, region, ymin, ymax, opening, count, fi = (
                Rk[mask], Ck[mask], in_x[mask], in_z[mask], region[mask], ymin[mask], ymax[mask], opening[mask], count[mask], fi[mask]
            )

        keep(valid)
        if not len(fi):
            return []
        shift = (ymin + ymax) / 2
        ys = np.abs(y - shift[:, None])
        half = opening[:, None] / 2
        t = g.finger_thickness
        finger_hit = in_x & in_z & (ys >= half) & (ys < half + t)
        palm_z = (z <= dep - g.finger_length) & (z > dep - g.finger_length - g.palm_depth)
        palm_hit = palm_z & (x < g.palm_width / 2) & (ys < g.max_opening / 2 + t)
        body_z = (z <= dep - g.finger_length - g.palm_depth) & (z > dep - g.flange_to_fingertip)
        body_hit = body_z & (x < g.body_half_extent) & (ys < g.body_half_extent)
        valid = ~np.any(finger_hit | palm_hit | body_hit, axis=1)
        if plane is not None:
            valid &= self._above_table(Ck, Rk, shift, opening, dep[:, 0], plane)
        keep(valid)
        if not len(fi):
            return []
        shift, ys, half = shift[valid], ys[valid], half[valid]
        # Antipodality from the normals of the outermost points on each side of the closing region.
        band = 0.003
        lo = region & (y < ymin[:, None] + band)
        hi = region & (y > ymax[:, None] - band)
        # The contact normal of a side: its surface most squarely facing the pad (points along an edge also carry
        # the neighbouring face's normals, e.g. a box's top, which the pad does not press on).
        n_lo = np.where(lo, ny, np.inf).min(axis=1, initial=np.inf)
        n_hi = np.where(hi, ny, -np.inf).max(axis=1, initial=-np.inf)
        n_lo, n_hi = np.where(np.isfinite(n_lo), n_lo, 0.0), np.where(np.isfinite(n_hi), n_hi, 0.0)
        antipodal = 0.5 * (np.clip(-n_lo, 0, 1) + np.clip(n_hi, 0, 1))
        valid = np.ones(len(fi), dtype=bool)
        # Neither side's face seen (the top of a box or a cup's rim, seen from above): a frame closing where the
        # object's outline is narrowest still meets it squarely on both sides (walls below an edge taken upright).
        if outline.any():
            # a frame chosen by the outline's width: each end not seen squarely must be the edge of a surface seen
            # from above (a top face, a rim), or the pads close on a strip of a side wall that turns away
            up = NQ @ -down
            up_lo = np.where(lo, up[None], 0).sum(axis=1) / np.maximum(lo.sum(axis=1), 1)
            up_hi = np.where(hi, up[None], 0).sum(axis=1) / np.maximum(hi.sum(axis=1), 1)
            valid &= ~outline | (((np.abs(n_lo) >= 0.3) | (up_lo >= 0.7)) & ((np.abs(n_hi) >= 0.3) | (up_hi >= 0.7)))
            # ... and the outline must cross the closing axis squarely there: a chord across a disc off its centre
            # is narrow, but its ends slant (the outline's slope beside each pad, within the friction cone)
            blind = outline & ((np.abs(n_lo) < 0.3) | (np.abs(n_hi) < 0.3)) & valid
            if blind.any():
                valid[blind] &= self._outline_square(xs[blind], y[blind], in_z[blind], ymin[blind], ymax[blind])
            antipodal = np.where(outline & (np.abs(n_lo) < 0.3) & (np.abs(n_hi) < 0.3), 0.5, antipodal)
        # A side whose surface was seen facing the finger (|normal . closing| >= 0.3) must lie inside the friction
        # cone, or the pad slides off (a pinch across a box corner). A side not seen (its face hidden from the
        # camera) is taken only where the camera saw that finger's place empty, so the object surely ends there
        # (inside a cup past its wall; not behind a bottle, whose far side may reach past the pad). A frame chosen
        # by the outline's width was checked on the outline (a normal at a silhouette, estimated from one side
        # only, leans toward the camera).
        cos_f = np.cos(np.deg2rad(cfg.friction_angle_deg))
        valid &= outline | (((np.abs(n_lo) < 0.3) | (-n_lo >= cos_f)) & ((np.abs(n_hi) < 0.3) | (n_hi >= cos_f)))
        for side, blind in ((-1.0, ~outline & (np.abs(n_lo) < 0.3) & valid), (1.0, ~outline & (np.abs(n_hi) < 0.3) & valid)):
            if blind.any():
                valid[blind] &= self._finger_place_seen_free(Ck[blind], Rk[blind], np.where(side > 0, ymax, ymin)[blind], side, dep[blind, 0], scene)
        valid &= antipodal >= cfg.min_antipodality
        if not valid.any():
            return []
        keep(valid)
        shift, ys, half, antipodal = shift[valid], ys[valid], half[valid], antipodal[valid]
        approach = np.clip(Rk[:, :, 2] @ down, 0, 1)
        # Clearance: distance from points outside the closing region to the finger boxes.
        hx = g.finger_width / 2
        dx = np.maximum(x - hx, 0)
        dy = np.maximum(np.abs(ys - (half + t / 2)) - t / 2, 0)
        dz = np.maximum(np.abs(z - (dep - g.finger_length / 2)) - g.finger_length / 2, 0)
        outside = ~(in_x & in_z & (ys < half))
        dist = np.where(outside, np.sqrt(dx * dx + dy * dy + dz * dz), np.inf).min(axis=1)
        clearance = np.clip(dist / cfg.clearance_reference, 0, 1)
        depth_term = np.clip(dep[:, 0] / depths.max(), 0, 1) if depths.max() > 0 else np.ones(len(dep))
        score = (
            cfg.weight_antipodal * antipodal
            + cfg.weight_approach * approach
            + cfg.weight_clearance * clearance
            + cfg.weight_depth * depth_term
        )
        out = []
        for k in range(len(fi)):
            pose = np.eye(4)
            pose[:3, :3] = Rk[k]
            # a reach shallower than the fixed depths: the centre moves back with the hand (fingertips stay put)
            back = min(dep[k, 0] - depths.min(), 0.0)
            pose[:3, 3] = Ck[k] + shift[k] * Rk[k][:, 1] + back * Rk[k][:, 2]
            out.append(Grasp(pose=pose, width=float(opening[k]), score=float(score[k]), depth=float(dep[k, 0] - back)))
        return out

    def _finger_place_seen_free(self, C, R, end, side, depth, scene) -> np.ndarray:
        """Per candidate (frames C (K, 3), R (K, 3, 3); the stretch's ``end`` on the closing axis, on ``side`` +-1;
        fingertip ``depth``): did the camera see the place of that finger, just past the end, empty?"""
        g, cfg = self.config.gripper, self.config
        if scene is None:
            return np.zeros(len(C), dtype=bool)
        yf = end + side * (cfg.width_margin + g.finger_thickness / 2)
        z = depth[:, None] - g.finger_length * np.array([0.15, 0.5, 0.85])
        local = np.stack([np.zeros((len(C), 3)), np.repeat(yf[:, None], 3, axis=1), z], axis=-1)
        X = C[:, None] + np.einsum("kij,kpj->kpi", R, local)
        return scene.seen_free(X.reshape(-1, 3), cfg.voxel_size, cfg.voxel_size).reshape(len(C), 3).all(axis=1)

    def _outline_square(self, xs, y, in_z, ymin, ymax) -> np.ndarray:
        """Per candidate: does the object's outline run square to the closing axis at each end of the closed-on
        stretch, within the friction cone? xs, y (K, M): the points in the gripper frame (m); in_z (K, M): within
        the fingers' reach along the approach; ymin, ymax (K,).

        Beside a pad (one to two and a half finger widths off the closing axis) the outline may recede, not
        reach out past the pad's line by more than the friction slope (a voxel of slack): a chord across a disc
        off its centre is narrow, but there the disc runs on past the pad at a slant."""
        g, cfg = self.config.gripper, self.config
        tan_f = np.tan(np.deg2rad(cfg.friction_angle_deg))
        beside = in_z & (np.abs(xs) > g.finger_width) & (np.abs(xs) < 2.5 * g.finger_width)
        ok = np.ones(len(y), dtype=bool)
        for sign, end in ((1.0, ymax), (-1.0, ymin)):
            out = sign * (y - end[:, None])
            reach_out = out - cfg.voxel_size
            near = beside & (reach_out > 0) & (out < g.finger_thickness + 2 * cfg.width_margin)  # this object, not the next one
            slope = np.where(near, reach_out / np.maximum(np.abs(xs), 1e-6), 0.0).max(axis=1)
            ok &= slope <= tan_f
        return ok

    def _contact_depth(self, L: np.ndarray) -> np.ndarray:
        """Per frame, the fingertip depth (m, along the approach from the frame centre) at which the palm, or the
        gripper body behind it, comes within 2 mm of the nearest point in front of it; inf when none is.

        L: (F, M, 3) object points in each candidate gripper frame (m)."""
        g = self.config.gripper
        x, y, z = np.abs(L[..., 0]), np.abs(L[..., 1]), L[..., 2]
        palm = (x < g.palm_width / 2) & (y < g.max_opening / 2 + g.finger_thickness)
        body = (x < g.body_half_extent) & (y < g.body_half_extent)
        palm_fit = np.where(palm, z, np.inf).min(axis=1, initial=np.inf) + g.finger_length
        body_fit = np.where(body, z, np.inf).min(axis=1, initial=np.inf) + g.finger_length + g.palm_depth
        return np.minimum(palm_fit, body_fit) - 0.002

    def _closing_span(self, y: np.ndarray, anchors: np.ndarray, C=None, R=None, depth=None, scene=None) -> tuple[np.ndarray, np.ndarray]:
        """(ymin, ymax) per candidate of the points the pads close on.

        y (K, M): closing-axis coordinates of the points between the fingers (NaN elsewhere); anchors (K,) m or
        NaN; C (K, 3), R (K, 3, 3), depth (K,): the candidate frames (base frame, m); scene: the free-space test.
        Without an anchor, every point between the fingers. With one, the stretch of points around it up to a
        gap a finger could enter (``finger_thickness`` + 2 ``width_margin``), if the camera saw that finger's
        place empty (inside a cup, between two objects; not inside a box under its lid): the finger then goes
        there and the pads close on the stretch alone (a cup's wall). Without frames (``C`` None), every such
        gap counts (a first, optimistic look).
        """
        g, cfg = self.config.gripper, self.config
        s = np.sort(y, axis=1)  # NaN last
        seen = ~np.isnan(y)
        lo_all, hi_all = np.min(y, axis=1, initial=np.inf, where=seen), np.max(y, axis=1, initial=-np.inf, where=seen)
        ymin, ymax = lo_all.copy(), hi_all.copy()
        anchored = ~np.isnan(anchors)
        if (C is not None and scene is None) or not anchored.any():
            return ymin, ymax
        with np.errstate(invalid="ignore"):
            breaks = np.diff(s, axis=1) >= g.finger_thickness + 2 * cfg.width_margin  # (K, M - 1): a gap between s[j] and s[j + 1]
        a = anchors[:, None]
        # the anchor's stretch: from the first point after the last gap below it to the last point before the first gap above it
        lo = np.where(breaks & (s[:, 1:] <= a), s[:, 1:], -np.inf).max(axis=1, initial=-np.inf)
        hi = np.where(breaks & (s[:, :-1] >= a), s[:, :-1], np.inf).min(axis=1, initial=np.inf)
        if C is None:
            return np.where(anchored & np.isfinite(lo), lo, ymin), np.where(anchored & np.isfinite(hi), hi, ymax)
        z = depth[:, None] - g.finger_length * np.array([0.15, 0.5, 0.85])  # along each finger (gripper frame)
        for bound, side, out in ((lo, -1.0, ymin), (hi, 1.0, ymax)):
            k = np.flatnonzero(anchored & np.isfinite(bound))
            if not len(k):
                continue
            yf = bound[k] + side * (cfg.width_margin + g.finger_thickness / 2)  # that finger's centre line
            local = np.stack([np.zeros((len(k), 3)), np.repeat(yf[:, None], 3, axis=1), z[k]], axis=-1)  # (k, 3, 3)
            X = C[k, None] + np.einsum("kij,kpj->kpi", R[k], local)
            free = scene.seen_free(X.reshape(-1, 3), cfg.voxel_size, cfg.voxel_size).reshape(len(k), 3).all(axis=1)
            out[k[free]] = bound[k[free]]
        return ymin, ymax

    def _above_table(self, C, R, shift, opening, depth, plane) -> np.ndarray:
        """Mask of candidates whose gripper boxes all stay ``table_clearance`` above the table plane."""
        n, d = plane
        g = self.config.gripper
        nR = np.einsum("i,kij->kj", n, R)  # the table normal in each gripper frame, (K, 3)
        ok = np.ones(len(C), dtype=bool)
        for b in range(4):  # fingers (+y, -y), palm, body; same layout as GripperConfig.collision_boxes
            centres, halves = g.collision_boxes(g.max_opening, 0.0)
            centre = np.tile(centres[b], (len(C), 1))
            centre[:, 2] += depth
            if b < 2:
                centre[:, 1] = (1 if b == 0 else -1) * (opening / 2 + g.finger_thickness / 2)
            centre[:, 1] += shift
            lowest = np.einsum("kj,kj->k", centre, nR) - np.abs(nR) @ halves[b]
            ok &= C @ n + d + lowest > self.config.table_clearance
        return ok
