"""``python -m dkt_perception.tag_accuracy``: tag corner, pose and metric-depth accuracy on the synthetic tabletop.

For each seed of the default scene (the one test_metric_scale uses is seed 2), with pupil-apriltags' corners and
with the refined ones (``tags.refine_corners``):

  * per tag: detected minus exactly projected corners (max and RMS, px) and the tag's z error (mm);
  * the median |depth error| (mm, pixels at 0.4-1.0 m) of metric depth fitted from an exact affine disparity
    with tags [0, 1] and [0, 1, 2] (issue 4's acceptance: <= 1 mm).

The numbers only depend on the seed (sensor noise) and ``--blur``: the scene's geometry is exact. ``--blur SIGMA``
blurs the colour image (Gaussian, px) before detection, as defocus or a soft lens would.
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from dkt_perception.metric_scale import MetricDepthEstimator, MetricScaleConfig
from dkt_perception.synthetic_scene import SyntheticScene, default_scene
from dkt_perception.tags import TagConfig, TagDetection, TagDetector

#: DKT's disparity is an unknown affine function of inverse depth; any positive (a, b) will do.
_DISPARITY_A, _DISPARITY_B = 0.37, 0.12


def corner_errors(det: TagDetection, scene: SyntheticScene) -> np.ndarray:
    """Detected minus exactly projected corners of the black square (4x2 px), matched by nearest corner.

    Matched by distance because the printed pattern's axes differ from the scene's tag frame (see ``SceneTag``).
    """
    truth = scene.intrinsics.project(next(t for t in scene.tags if t.id == det.id).corners_camera())
    return np.array([c - truth[np.argmin(np.linalg.norm(truth - c, axis=1))] for c in det.corners_px])


def evaluate(seed: int, blur_px: float = 0.0) -> dict:
    """Accuracy figures of the default scene with ``seed``, for the detector's and the refined corners.

    ``blur_px``: Gaussian blur sigma (px) applied to the colour image first (0 = none).
    """
    scene = default_scene(seed=seed)
    frame = scene.render(0)
    rgb = cv2.GaussianBlur(frame.rgb, (0, 0), blur_px) if blur_px > 0 else frame.rgb
    gt = frame.depth_gt_m
    disparity = (_DISPARITY_A / gt + _DISPARITY_B).astype(np.float32)
    evaluated = (gt >= 0.4) & (gt <= 1.0)
    out = {"seed": seed, "blur_px": blur_px}
    for name, refine in (("detector", False), ("refined", True)):
        detections, _ = TagDetector(TagConfig(sizes_m=[0.06], refine_corners=refine)).detect(rgb, scene.intrinsics)
        tags = {}
        for det in sorted(detections, key=lambda d: d.id):
            err = corner_errors(det, scene)
            true_z = next(t for t in scene.tags if t.id == det.id).T_camera_tag[2, 3]
            tags[det.id] = {
                "corner_max_px": round(float(np.abs(err).max()), 4),
                "corner_rms_px": round(float(np.sqrt(np.mean(np.sum(err**2, axis=1)))), 4),
                "z_error_mm": round(float(det.T_camera_tag[2, 3] - true_z) * 1000, 3),
                "refined": det.corners_refined,
            }
        median_mm = {}
        for ids in ([0, 1], [0, 1, 2]):
            est = MetricDepthEstimator(MetricScaleConfig(tags=TagConfig(ids=ids, sizes_m=[0.06], refine_corners=refine)))
            res = est.update(disparity, rgb, scene.intrinsics, frame.stamp_ns)
            err = np.abs(res.depth_m[evaluated].astype(np.float64) - gt[evaluated]) if res.depth_m is not None else np.array([np.nan])
            median_mm[str(ids)] = round(float(np.nanmedian(err)) * 1000, 3)
        out[name] = {"tags": tags, "median_depth_error_mm": median_mm}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dkt_perception.tag_accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default-scene seeds (sensor noise)")
    parser.add_argument("--blur", type=float, default=0.0, metavar="SIGMA", help="Gaussian blur of the colour image before detection, px")
    parser.add_argument("--json", action="store_true", help="print one JSON line per seed")
    args = parser.parse_args(argv)
    if not 0.0 <= args.blur < 50.0:  # NaN fails too
        parser.error(f"--blur must be a Gaussian sigma in [0, 50) px, got {args.blur}")
    for seed in args.seeds:
        result = evaluate(seed, args.blur)
        if args.json:
            print(json.dumps(result))
            continue
        for name in ("detector", "refined"):
            r = result[name]
            tags = ", ".join(
                f"{i}: {t['corner_rms_px']:.3f}/{t['corner_max_px']:.3f} px z{t['z_error_mm']:+.2f} mm" for i, t in r["tags"].items()
            )
            medians = ", ".join(f"{ids} {mm:.2f} mm" for ids, mm in r["median_depth_error_mm"].items())
            print(f"seed {seed} {name:8s} corners rms/max: {tags} | median depth error {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
