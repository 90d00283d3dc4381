"""Train config and manifest loading through the one config loader: shipped configs load, errors name the key."""

from pathlib import Path

import pytest

from dkt_stack.config import ConfigError
from dkt_training.config import DEFAULT_TARGETS, load_train_config
from dkt_training.datasets import load_manifest

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_paper_config_is_the_paper_recipe():
    cfg = load_train_config(CONFIGS / "dkt_1.3b_paper.yaml")
    assert (cfg.lr, cfg.height, cfg.width, cfg.max_steps, cfg.max_latent_n) == (1e-5, 480, 832, 70000, 5)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.target_modules) == (128, 128.0, DEFAULT_TARGETS)
    assert cfg.batch_size * cfg.grad_accum * 8 == 8  # batch 8 over 8 processes
    assert Path(cfg.data) == CONFIGS / "dkt_train_manifest.yaml" and Path(cfg.data).is_file()


def test_tiny_config_loads():
    cfg = load_train_config(CONFIGS / "tiny_cpu.yaml")
    assert cfg.model == "tiny" and cfg.random_weights and cfg.lora.rank == 4


@pytest.mark.parametrize(("text", "key"), [
    ("data: m.yaml\nlora: {rank: 0}\n", "lora.rank"),
    ("data: m.yaml\nheight: 100\n", "height"),
    ("data: m.yaml\nlr: fast\n", "lr"),
    ("data: m.yaml\nlearning_rate: 1.0\n", "learning_rate"),
    ("lr: 1.0e-5\n", "data"),
    ("data: m.yaml\naugment: {disparity_percentiles: [98, 2]}\n", "augment.disparity_percentiles"),
    ("data: m.yaml\nlora_preset: huge\n", "lora_preset"),
])
def test_config_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert err.value.key == key and f"key '{key}'" in str(err.value) and str(path) in str(err.value)


def test_preset_fills_unset_lora_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: m.yaml\nlora_preset: attention_only\nlora: {rank: 8}\n")
    cfg = load_train_config(path)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.target_modules) == (8, 64.0, ["to_q", "to_k", "to_v", "to_out.0"])


def test_manifest_errors_name_the_key(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("datasets:\n  - {name: a, kind: video, root: x}\n  - {name: b, kind: pictures, root: y}\n")
    with pytest.raises(ConfigError, match=r"key 'datasets\[1\]\.kind'"):
        load_manifest(path)
    path.write_text("datasets:\n  - {name: a, kind: video, root: x}\n  - {name: a, kind: image, root: y}\n")
    with pytest.raises(ConfigError, match=r"key 'datasets\[1\]\.name'.*duplicate"):
        load_manifest(path)
    path.write_text("datasets:\n  - {name: a, kind: video, root: x, weight: -1}\n")
    with pytest.raises(ConfigError, match="weight"):
        load_manifest(path)
    path.write_text("datasets:\n  - {name: a, kind: video, root: sub}\n")
    assert load_manifest(path).datasets[0].root == str((tmp_path / "sub").resolve())
