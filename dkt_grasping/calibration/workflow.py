"""The steps a calibration run is made of, shared by ``dkt-stack calibrate`` and ``calibration_node``.

start a session -> plan poses (automatic mode) -> collect -> solve -> write into the rig file; or verify.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from dkt_grasping.calibration.board import BoardModel
from dkt_grasping.calibration.config import CalibrationConfig, nominal_geometry, output_key
from dkt_grasping.calibration.poses import PosePlan, generate_pose_plan
from dkt_grasping.calibration.samples import FLANGE_FRAME
from dkt_grasping.calibration.session import CalibrationSession, SessionInfo
from dkt_grasping.calibration.solver import CalibrationResult, calibrate, pose_difference
from dkt_grasping.calibration.verify import VerifyResult, verify
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.rig import RigUpdate, load_rig, matrix_to_pose7, pose7_to_matrix, rig_path, update_rig_pose


def default_session_dir(rig: str, arm: str, mode: str, purpose: str = "calibrate", day: str | None = None) -> Path:
    """``~/.local/share/dkt_stack/calibration/<rig>_<arm>_<mode>[_verify]_<YYYYMMDD>``: a rerun the same day continues it."""
    import datetime

    day = day or datetime.date.today().strftime("%Y%m%d")
    name = f"{Path(str(rig)).stem}_{arm}_{mode}{'_verify' if purpose == 'verify' else ''}_{day}"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "dkt_stack" / "calibration" / name


def start_session(
    folder: str | os.PathLike, mode: str, arm: str, rig: str, config: CalibrationConfig, intrinsics: CameraIntrinsics, purpose: str = "calibrate"
) -> CalibrationSession:
    """Open the session in ``folder`` (continuing it when it matches) or create it."""
    load_rig(rig).arm(arm)  # a wrong rig or arm name fails here, before anything is collected
    info = SessionInfo(mode=mode, arm=arm, rig=str(rig), board=config.board, intrinsics=intrinsics, purpose=purpose)
    return CalibrationSession.open_or_create(folder, info)


def plan_poses(session: CalibrationSession, config: CalibrationConfig, q_start: np.ndarray | None, kinematics=None) -> PosePlan | list[np.ndarray]:
    """The session's automatic poses: the stored plan of a continued session, else a new plan (stored at once)."""
    if session.info.pose_plan:
        return [np.asarray(q, dtype=np.float64) for q in session.info.pose_plan]
    info = session.info
    X, Y = nominal_geometry(info.mode, load_rig(info.rig), info.arm, config)
    plan = generate_pose_plan(
        info.mode, X, Y, BoardModel(info.board), info.intrinsics, config.poses,
        q_start=q_start, kinematics=kinematics or config.arm.kinematics(), coverage=config.solver.coverage,
    )  # fmt: skip
    if plan.qs:
        session.set_pose_plan(plan.qs)
    return plan


def refresh_flange_poses(session: CalibrationSession, kinematics=None) -> tuple[list, float]:
    """Samples with flange poses recomputed from their joints by the current kinematics, and the largest change (mm).

    The kinematic model may have been corrected since collection; the joints are the measurement.
    """
    from dkt_grasping.kinematics import PiperKinematics

    kin = kinematics or PiperKinematics()
    out, worst = [], 0.0
    for s in session.samples:
        T = kin.fk(s.q, frame=FLANGE_FRAME)
        worst = max(worst, pose_difference(T, s.T_base_flange)[0])
        out.append(dataclasses.replace(s, T_base_flange=T))
    return out, worst


def solve_session(session: CalibrationSession, config: CalibrationConfig, kinematics=None) -> CalibrationResult:
    """Calibrate from the session's samples and store ``result.json`` and ``report.txt`` in it."""
    info = session.info
    samples, moved_mm = refresh_flange_poses(session, kinematics or config.arm.kinematics())
    # the board as configured now: a corrected tag size applies to samples collected before
    model = BoardModel(config.board)
    result = calibrate(samples, info.mode, model, info.intrinsics, config.solver, config.detection)
    if moved_mm > 0.1:
        result.warnings.append(f"the kinematics changed since collection: flange poses moved by up to {moved_mm:.1f} mm (the joints were used)")
    session.write_result(result_dict(result, session), report_text(result, session))
    return result


def result_dict(result: CalibrationResult, session: CalibrationSession) -> dict:
    out = result.to_dict()
    out["rig_key"] = output_key(result.mode)
    out["pose"] = matrix_to_pose7(result.X)
    out["arm"] = session.info.arm
    out["rig"] = session.info.rig
    return out


def report_text(result: CalibrationResult, session: CalibrationSession) -> str:
    info = session.info
    what = "camera optical frame in the arm's base frame" if info.mode == "eye_to_hand" else "wrist camera optical frame in the flange frame"
    lines = [
        f"hand-eye calibration, {info.mode}, arm {info.arm}, session {session.folder}",
        f"samples: {len(session.samples)} collected, {len(result.used)} used, {len(result.rejected)} rejected, {len(result.outliers)} outliers",
        f"rotation spans {', '.join(f'{v:.0f}' for v in result.coverage.rotation_span_deg)} deg",
        "",
        result.table(),
        "",
        f"result ({result.method}): {output_key(info.mode)} = {np.round(matrix_to_pose7(result.X), 6).tolist()}  ({what}, x y z m, qx qy qz qw)",
        f"1-sigma: {result.std_translation_mm:.2f} mm, {result.std_rotation_deg:.3f} deg; board scale {result.board_scale:.4f} +- {result.board_scale_std:.4f}",
    ]
    lines += [f"rejected sample {i}: {r}" for i, r in result.rejected]
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"PROBLEM: {p}" for p in result.problems]
    return "\n".join(lines)


def apply_result(result: CalibrationResult, session: CalibrationSession, rig: str | os.PathLike | None = None, *, force: bool = False) -> RigUpdate:
    """Write the result into the rig file (the session's rig unless ``rig``); refuses a result with problems unless ``force``."""
    if result.problems and not force:
        raise ValueError("the calibration has problems and was not written: " + "; ".join(result.problems))
    info = session.info
    figures = {
        "method": result.method,
        "samples_used": len(result.used),
        "reprojection_rms_px": round(float(result.method_result(result.method).reprojection_rms_px), 4),
        "std_translation_mm": round(float(result.std_translation_mm), 3),
        "std_rotation_deg": round(float(result.std_rotation_deg), 4),
    }
    return update_rig_pose(
        rig_path(rig or info.rig), info.arm, output_key(info.mode), result.X, source=f"dkt-stack calibrate, session {session.folder}", details=figures
    )


def verify_session(
    session: CalibrationSession, config: CalibrationConfig, calibration: CalibrationSession | None = None, kinematics=None
) -> VerifyResult:
    """Check the rig file's current calibration against the samples of a verification session.

    X comes from the rig file (what the graphs use); Y (the board mount) from
    ``calibration``'s result when given, else it is fitted.
    """
    info = session.info
    mount = load_rig(info.rig).arm(info.arm)
    key = output_key(info.mode)
    pose = getattr(mount, key)
    if pose is None:
        raise ValueError(f"the rig file has no {key} for arm {info.arm} to verify: calibrate first")
    X = pose7_to_matrix(pose, key)
    Y = None
    if calibration is not None:
        res = calibration.read_result()
        if res.get("mode") != info.mode or res.get("arm") != info.arm:
            raise ValueError(f"the calibration session {calibration.folder} is for {res.get('mode')} / {res.get('arm')}, not {info.mode} / {info.arm}")
        Y = np.asarray(res["Y"], dtype=np.float64)
    samples, _ = refresh_flange_poses(session, kinematics or config.arm.kinematics())
    result = verify(
        samples, info.mode, BoardModel(config.board), info.intrinsics, X, Y,
        checks=config.detection, max_mm=config.verify_max_mm, max_deg=config.verify_max_deg,
    )  # fmt: skip
    session.write_result(result.to_dict(), result.text(), name="verify")
    return result
