"""Sub-pixel corners of an AprilTag's black square, re-measured from pixel areas along its four edges.

pupil-apriltags' corners are biased by up to ~0.2 px depending on where an edge falls within a pixel; on a 50 px
tag 0.1 px is ~0.5 mm of depth at 0.7 m, which the metric scale fit extrapolates across the image.
:class:`dkt_perception.tags.TagDetector` replaces the detector's corners with :func:`refine_square_corners`'
(``TagConfig.refine_corners``). Conventions as in :mod:`dkt_perception.tags`: pixel centres at integers, corners
in IPPE_SQUARE order.
"""

from __future__ import annotations

import cv2
import numpy as np

#: A refined corner farther than this from pupil-apriltags' (px) means the edge fits saw something else: keep pupil's.
_MAX_REFINE_SHIFT_PX = 1.0
#: The end pixels of an edge's sampling window lie at least this far (px) from the edge: pure paper and pure ink.
_EDGE_CLEARANCE_PX = 0.5
#: Tag-plane corners of the black square in cells (8 cells a side: 6 data + 2 border), IPPE_SQUARE order.
_SQUARE_CELLS = np.array([[-4.0, 4.0], [4.0, 4.0], [4.0, -4.0], [-4.0, -4.0]])


def refine_square_corners(gray: np.ndarray, corners_px: np.ndarray, iterations: int = 2) -> np.ndarray | None:
    """Sub-pixel corners of a tag's black square from its four edges; None when the tag is too small or a fit fails.

    Why: pupil-apriltags places each edge at the gradient-weighted mean of nearest-pixel samples, biased by up to
    ~0.2 px depending on where the edge falls within a pixel (most for edges along the pixel grid). On a 50 px tag
    0.1 px is ~0.5 mm of depth at 0.7 m, and the metric scale fit extrapolates that error across the image.

    How: a pixel integrates light over its area, so across a straight ink/paper edge the sum of a pixel column's
    paper fractions ``(I - ink) / (paper - ink)`` is exactly the length of the column's paper part, whatever the
    edge's sub-pixel phase or slope, and a symmetric blur that stays inside the window does not change it. Each edge
    is measured so in every pixel column (row, for steep edges) of the band half a cell either side of it (the black
    border inside, the printed white margin outside; wider for small tags, up to the cell), away from the corners;
    a robust straight-line fit per edge and the intersections of neighbouring edges give the corners. Ink and paper
    levels are medians of the windows' end pixels along the edge (lighting uniform along one edge). Each column's
    window is symmetric about the current edge estimate, so that a blur tail reaching the end pixels biases both
    levels alike and cancels in the sum; a second pass re-centres the windows on the first pass's corners.

    Args:
        gray: (H, W) uint8 image the tag was detected in.
        corners_px: 4x2 corners of the black square in IPPE order (px, CameraInfo convention: pixel centres at
            integers), within a few tenths of a pixel (pupil-apriltags' are).
    Returns:
        4x2 float64 corners in the same order and convention, or None (the caller keeps its corners).
        ``iterations`` > 1 re-centres the sampling windows on the previous pass's corners. On sharp images one pass
        is exact from corners within a few tenths of a pixel; under blur an off-centre window leaves a bias of about
        twice the blur tail at the window's ends times the offset, and the second pass removes most of it
        (``python -m dkt_perception.tag_accuracy --seeds 0 --blur 1.5``, corner RMS of tags 0/1/2: 0.070/0.018/
        0.098 px after two passes, 0.105/0.024/0.149 after one, pupil-apriltags' 0.089/0.058/0.240; a third pass
        does not help).
    """
    start = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    c = start
    swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(iterations):
        try:
            H = cv2.getPerspectiveTransform(_SQUARE_CELLS.astype(np.float32), c.astype(np.float32))  # cells -> px
            lines = []
            for e in range(4):
                steep = abs(c[(e + 1) % 4, 1] - c[e, 1]) > abs(c[(e + 1) % 4, 0] - c[e, 0])  # fitted in the transposed image
                fit = _fit_edge(gray.T if steep else gray, swap @ H if steep else H, e)
                if fit is None:
                    return None
                slope, offset = fit  # v = slope * u + offset (u, v swapped for steep edges)
                lines.append((np.array([1.0, -slope]) if steep else np.array([-slope, 1.0]), offset))
            c = np.array([np.linalg.solve(np.stack([lines[k - 1][0], lines[k][0]]), [lines[k - 1][1], lines[k][1]]) for k in range(4)])
        except np.linalg.LinAlgError:  # a degenerate quad or parallel neighbouring edges: nothing to refine
            return None
        if not np.all(np.isfinite(c)) or np.max(np.linalg.norm(c - start, axis=1)) > _MAX_REFINE_SHIFT_PX:
            return None
    return c


def diagonal_intersection(corners_px: np.ndarray) -> np.ndarray:
    """Image of a square's centre (px): where the diagonals of its four projected corners (in order) cross."""
    p0, p1, p2, p3 = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    d1, d2, r = p2 - p0, p3 - p1, p1 - p0
    t = (r[0] * d2[1] - r[1] * d2[0]) / (d1[0] * d2[1] - d1[1] * d2[0])
    return p0 + t * d1


def _fit_edge(img: np.ndarray, H: np.ndarray, edge: int) -> tuple[float, float] | None:
    """Line v = slope * u + offset (px) through edge ``edge`` (corner e -> e+1) of the square, or None.

    ``H`` maps tag-plane cells (the square is [-4, 4]^2) to this image's (u, v); the edge must be at most 45 deg
    from the u axis. A tag-plane line l maps to the image line ``inv(H).T @ l``, which crosses column u at
    v = -(l0 u + l2) / l1.
    """
    rows, cols = img.shape
    a, b = _SQUARE_CELLS[edge], _SQUARE_CELLS[(edge + 1) % 4]
    out_dir, along = (a + b) / 8.0, (b - a) / 8.0  # unit outward normal and edge direction, tag plane
    H_inv = np.linalg.inv(H)
    # Image lines of the tag lines {p: out_dir . p = 4 + offset} for offsets (cells) 0 (the edge), -1, -w, +w.
    ends = np.array([H @ (a[0], a[1], 1.0), H @ (b[0], b[1], 1.0)])
    ends = ends[:, :2] / ends[:, 2:]
    mid = 0.5 * (ends[0, 0] + ends[1, 0])
    if not abs(ends[1, 0] - ends[0, 0]) >= 1.0:  # a degenerate (or non-finite) edge
        return None
    slope = (ends[1, 1] - ends[0, 1]) / (ends[1, 0] - ends[0, 0])

    def column_v(offset_cells: float, u):
        line = H_inv.T @ (out_dir[0], out_dir[1], -(4.0 + offset_cells))
        return -(line[0] * u + line[2]) / line[1]

    cell_px = abs(column_v(-1.0, mid) - column_v(0.0, mid)) / np.hypot(1.0, slope)  # border width along the normal
    # Band half-width (cells): half a cell leaves room for blur on both sides; small tags need more of the cell
    # for the edge's own transition (|slope| / 2), the clearance and one pure pixel each side.
    half = max(0.5, (_EDGE_CLEARANCE_PX + 2.0 + 0.5 * abs(slope)) / cell_px)
    if half > 1.0 - 0.25 / cell_px:
        return None
    u = np.arange(max(np.ceil(ends[:, 0].min()), 0.0), min(np.floor(ends[:, 0].max()), cols - 1.0) + 1.0)
    strip = np.stack([u - 0.5, u + 0.5])  # each column's extent in u
    v_edge, v_in, v_out = (column_v(o, strip) for o in (0.0, -half, half))
    ink_below = column_v(-half, mid) > column_v(0.0, mid)
    lo_line, hi_line = (v_out, v_in) if ink_below else (v_in, v_out)
    first = np.ceil(lo_line.max(axis=0) + 0.5)  # pixels entirely inside the band
    last = np.floor(hi_line.min(axis=0) - 0.5)
    ok = (first >= 0) & (last <= rows - 1)
    ok &= (first + 0.5 <= v_edge.min(axis=0) - _EDGE_CLEARANCE_PX) & (last - 0.5 >= v_edge.max(axis=0) + _EDGE_CLEARANCE_PX)
    # Half a cell from the corners, where the neighbouring edges enter the band: the window's corners, in cells.
    box = np.stack([np.repeat(strip, 2, axis=0), np.tile(np.stack([first - 0.5, last + 0.5]), (2, 1)), np.ones((4, u.size))])
    tag_box = np.einsum("ij,jkn->ikn", H_inv, box)
    ok &= np.all(np.abs(along[0] * tag_box[0] + along[1] * tag_box[1]) <= 3.5 * np.abs(tag_box[2]), axis=0)
    centre = column_v(0.0, u)[ok]  # the edge at each column's centre, from the current corners
    u, first, last = u[ok].astype(np.int64), first[ok].astype(np.int64), last[ok].astype(np.int64)
    if u.size < 4:
        return None
    # The window is symmetric about the current edge: the end pixels' levels then err by the same blur tail on
    # both sides, and that error cancels in the sum (an off-centre window would shift the edge by about twice the
    # tail fraction times the offset). The largest symmetric window inside the pure pixels; ends are fractional.
    half_px = np.minimum(centre - (first - 0.5), (last + 0.5) - centre)
    lo, hi = centre - half_px, centre + half_px
    k = first[:, None] + np.arange(int((last - first).max()) + 1)
    weight = np.clip(np.minimum(k + 0.5, hi[:, None]) - np.maximum(k - 0.5, lo[:, None]), 0.0, 1.0)  # pixel overlap
    profile = img[np.minimum(k, last[:, None]), u[:, None]].astype(np.float64)  # (columns, window)
    rows_idx = np.arange(u.size)
    span = last - first
    top_px = profile[rows_idx, np.clip(np.floor(lo + 0.5).astype(np.int64) - first, 0, span)]  # pixels holding the ends
    bottom_px = profile[rows_idx, np.clip(np.ceil(hi - 0.5).astype(np.int64) - first, 0, span)]
    paper, ink = np.median(np.stack([top_px, bottom_px] if ink_below else [bottom_px, top_px]), axis=1)
    if paper - ink < 10.0:  # no contrast: not this tag's edge
        return None
    paper_px = np.sum(weight * (profile - ink), axis=1) / (paper - ink)
    v = lo + paper_px if ink_below else hi - paper_px
    keep = np.ones(u.size, dtype=bool)
    for _ in range(2):  # least squares, then again without columns off the line (glints, occluders, noise)
        slope_fit, offset = _line_fit(u[keep], v[keep])
        resid = np.abs(v - (slope_fit * u + offset))
        keep = resid <= max(3.0 * 1.4826 * np.median(resid[keep]), 0.05)
        if keep.sum() < 4:
            return None
    return _line_fit(u[keep], v[keep])


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, offset) of y = slope * x + offset."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float(dx @ (y - ym) / (dx @ dx))
    return slope, float(ym - slope * xm)
