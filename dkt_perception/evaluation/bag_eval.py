"""Evaluate the depth topics of a (replayed) bag against its ground-truth depth topic.

A bag from ``dkt-stack replay`` of a synthetic recording holds
``<ns>/ground_truth/depth`` (32FC1 metres, published by the synthetic camera),
``<ns>/depth/relative`` (relative disparity: evaluated with ``space="disparity"``,
one global scale and shift per sequence as in the paper) and ``<ns>/depth/metric``
(metres: ``space="none"``, no alignment, so the AprilTag scaling is judged too).
Frames are matched by exact header stamp; a prediction frame without a ground
truth frame is ignored, and ``coverage`` says which fraction of the ground-truth
frames had a prediction (the metric topic skips frames with an invalid scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dkt_perception.evaluation.metrics import AlignSpace, SequenceMetrics, evaluate_sequence
from dkt_perception.replay.bag_io import GT_DEPTH_CANDIDATES, BagError, iter_messages, open_reader
from dkt_perception.replay.frames import decode_depth_m
from dkt_stack import conversions as cv


@dataclass
class TopicEvaluation:
    """Metrics of one prediction topic and how many ground-truth frames it covered."""

    topic: str
    space: str
    metrics: SequenceMetrics
    frames_matched: int
    frames_ground_truth: int

    @property
    def coverage(self) -> float:
        return self.frames_matched / self.frames_ground_truth if self.frames_ground_truth else 0.0


def default_predictions(topics: list[str], gt_topic: str) -> list[tuple[str, AlignSpace]]:
    """``<ns>/depth/relative`` (disparity) and ``<ns>/depth/metric`` (none) of the ground truth's camera namespace, when present."""
    ns = gt_topic.removesuffix("/ground_truth/depth")
    return [(t, s) for t, s in ((f"{ns}/depth/relative", "disparity"), (f"{ns}/depth/metric", "none")) if t in topics]


def _read_depth_topics(reader, topics: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """{topic: {header stamp ns: (H, W) float32}} in one pass; 32FC1 kept as published, 16UC1/compressed -> metres."""
    out: dict[str, dict[int, np.ndarray]] = {t: {} for t in topics}
    for topic, msgtype, _, msg, _ in iter_messages(reader, topics):
        if msg is None:
            continue
        stamp = cv.stamp_to_ns(msg.header.stamp)
        try:
            if msgtype == "sensor_msgs/msg/Image" and msg.encoding == "32FC1":
                out[topic][stamp] = cv.image_to_numpy(msg)  # relative disparity or metres, NaN kept
            else:
                out[topic][stamp] = decode_depth_m(msg, msgtype)
        except cv.ConversionError as exc:
            raise BagError(f"topic {topic}: {exc}") from exc
    return out


def evaluate_bag(
    path: str | Path,
    predictions: list[tuple[str, AlignSpace]] | None = None,
    gt_topic: str | None = None,
    depth_min_m: float = 0.3,
    depth_max_m: float = 1.5,
) -> list[TopicEvaluation]:
    """Metrics of each ``(topic, space)`` in ``predictions`` against ``gt_topic`` (default: the synthetic camera's).

    Raises BagError when the bag, the ground truth or a prediction topic is missing, or no stamps match.
    """
    reader = open_reader(path)
    try:
        msgtypes = {c.topic: c.msgtype for c in reader.connections}
        if gt_topic is None:
            found = [t for t in GT_DEPTH_CANDIDATES if t in msgtypes]
            if not found:
                raise BagError(f"{path}: no ground-truth depth topic (looked for {', '.join(GT_DEPTH_CANDIDATES)}; pass --gt-topic)")
            gt_topic = found[0]
        elif gt_topic not in msgtypes:
            raise BagError(f"{path}: ground-truth topic {gt_topic} is not in the bag (topics: {', '.join(sorted(msgtypes))})")
        predictions = predictions or default_predictions(list(msgtypes), gt_topic)
        if not predictions:
            raise BagError(f"{path}: no depth/relative or depth/metric topic beside {gt_topic}: replay the bag first (dkt-stack replay)")
        missing = [t for t, _ in predictions if t not in msgtypes]
        if missing:
            raise BagError(f"{path}: prediction topic(s) {', '.join(missing)} not in the bag (topics: {', '.join(sorted(msgtypes))})")
        frames = _read_depth_topics(reader, [gt_topic] + [t for t, _ in predictions])
        gt = frames[gt_topic]
        results = []
        for topic, space in predictions:
            pred = frames[topic]
            stamps = sorted(set(pred) & set(gt))
            if not stamps:
                raise BagError(f"{path}: no frame of {topic} has the header stamp of a {gt_topic} frame")
            shapes = {pred[s].shape for s in stamps} | {gt[s].shape for s in stamps}
            if len(shapes) != 1:
                raise BagError(f"{path}: {topic} and {gt_topic} frames have different sizes: {sorted(shapes)}")
            metrics = evaluate_sequence(np.stack([pred[s] for s in stamps]), np.stack([gt[s] for s in stamps]), space, depth_min_m, depth_max_m)
            results.append(TopicEvaluation(topic, space, metrics, len(stamps), len(gt)))
        return results
    finally:
        reader.close()
