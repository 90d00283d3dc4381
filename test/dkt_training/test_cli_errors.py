"""``dkt-stack train`` without weights: one line with the fix, exit 1, no traceback (also through ``python -m dkt_training.cli``)."""

from pathlib import Path

import pytest

CONFIG = str(Path(__file__).resolve().parents[2] / "training" / "configs" / "dkt_1.3b_paper.yaml")


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("DKT_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path / "weights"


def _check(err: str, weights: Path) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dkt-stack train: missing DKT weights in {weights}: ")
    assert err.rstrip().endswith(f"— point DKT_WEIGHTS_DIR at a copy, or run `dkt-stack weights fetch --dir {weights}`")


def test_train_without_weights_is_one_line(no_weights, tmp_path, capsys):
    from dkt_stack.cli import main

    assert main(["train", CONFIG, "--output", str(tmp_path / "run")]) == 1
    _check(capsys.readouterr().err, no_weights)


def test_module_entry_point_reports_the_same_line(no_weights, tmp_path, capsys):
    from training.cli import main  # this checkout's entry point (accelerate launch -m dkt_training.cli)

    assert main([CONFIG, "--output", str(tmp_path / "run")]) == 1
    _check(capsys.readouterr().err, no_weights)
