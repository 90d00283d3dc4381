"""Evaluation results to CSV and JSON, written atomically (temp file in the same folder + os.replace)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dkt_perception.evaluation.metrics import METRIC_KEYS
from dkt_stack.atomic_files import write_text_atomic

CSV_COLUMNS = ("name", *METRIC_KEYS, "valid_pixels", "frames", "coverage", "space", "scale", "shift")


def rows_to_csv(rows: list[dict]) -> str:
    """One line per row (each a dict with ``name``, the metric keys and optional extras) in CSV_COLUMNS order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    return buf.getvalue()


def write_report(out_dir: str | Path, report: dict) -> tuple[Path, Path]:
    """``out_dir/metrics.csv`` (the rows) and ``out_dir/metrics.json`` (the whole report); returns both paths."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / "metrics.csv", out_dir / "metrics.json"
    write_text_atomic(csv_path, rows_to_csv(report["rows"]))
    write_text_atomic(json_path, json.dumps(report, indent=2, allow_nan=True) + "\n")
    return csv_path, json_path
