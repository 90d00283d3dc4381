"""The training loop on the tiny model: loss goes down, only LoRA weights change, exact resume, checkpoints, cache, CLI."""

import argparse
import csv
from pathlib import Path

import pytest
import torch

from dkt_training import cli
from dkt_training.config import load_train_config
from dkt_training.objective import training_loss
from dkt_training.trainer import LoraTrainer, resolve_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def _config(tiny_data, **overrides):
    cfg = load_train_config(CONFIGS / "tiny_cpu.yaml")
    cfg.data = str(tiny_data)
    cfg.val_data = ""
    cfg.max_latent_n = 1
    cfg.batch_size = 1
    cfg.max_steps = 4
    cfg.checkpoint_every = 100
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.parametrize("objective", ["flow", "one_step"])
def test_loss_decreases_on_a_fixed_batch(tiny_data, tmp_path, objective):
    trainer = LoraTrainer(_config(tiny_data, objective=objective, lr=1e-2), output_dir=tmp_path)
    item = trainer.batches[1]
    depth_z, rgb_z = trainer.latents_for(item)
    losses = []
    for _ in range(12):
        gen = torch.Generator().manual_seed(0)  # same noise and sigma every step: only the weights change
        loss = training_loss(objective, trainer.net, depth_z, rgb_z, trainer.text, trainer.image, shift=5.0, generator=gen)
        trainer.acc.backward(loss)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0] and sum(losses[-3:]) < sum(losses[:3]), losses


def test_only_lora_weights_change_and_checkpoints_are_complete(tiny_data, tmp_path):
    trainer = LoraTrainer(_config(tiny_data, max_steps=3, checkpoint_every=1, keep_checkpoints=2), output_dir=tmp_path)
    base_before = {k: v.clone() for k, v in trainer.transformer.state_dict().items() if "lora_" not in k}
    lora_before = {k: v.clone() for k, v in trainer.transformer.state_dict().items() if "lora_" in k}
    vae_before = {k: v.clone() for k, v in trainer.vae.state_dict().items()}
    result = trainer.train()
    after = trainer.transformer.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base_before.items())
    assert all(torch.equal(trainer.vae.state_dict()[k], v) for k, v in vae_before.items())
    changed = [k for k, v in lora_before.items() if not torch.equal(after[k], v)]
    assert len(changed) == len(lora_before)  # every A and B moved (B starts at zero, A gets gradients once B != 0)
    # checkpoints: the last 2 kept, latest points at step 3, no temporary folders left, final export in both formats
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["latest", "step_0000002", "step_0000003"]
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000003" == result.checkpoint
    assert (tmp_path / "export" / "adapter_diffusers" / "pytorch_lora_weights.safetensors").is_file()
    assert (tmp_path / "export" / "dkt_lora_diffsynth.safetensors").is_file()
    with (tmp_path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["loss"]) > 0 for r in rows)


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_data, tmp_path):
    full = LoraTrainer(_config(tiny_data, max_steps=5), output_dir=tmp_path / "full").train()
    first = LoraTrainer(_config(tiny_data, max_steps=5), output_dir=tmp_path / "split").train(stop_at=2)
    assert first.last_step == 2 and first.checkpoint.name == "step_0000002"
    assert not (tmp_path / "split" / "export").exists()  # an interrupted run does not export
    second = LoraTrainer(_config(tiny_data, max_steps=5), output_dir=tmp_path / "split")
    rest = second.train(resume=tmp_path / "split")
    assert {**first.losses, **rest.losses} == full.losses  # bit-identical losses
    assert sorted(rest.losses) == [3, 4, 5]
    with (tmp_path / "split" / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5]
    # a different seed is refused: the sampler state does not belong to it
    with pytest.raises(ValueError, match="seed"):
        LoraTrainer(_config(tiny_data, max_steps=5, seed=9), output_dir=tmp_path / "other").train(resume=tmp_path / "split")


def test_latent_cache_reuses_latents_with_identical_losses(tiny_data, tmp_path):
    cfg = _config(tiny_data, max_steps=3, cache_latents=True, latent_cache_dir=str(tmp_path / "cache"))
    cold = LoraTrainer(cfg, output_dir=tmp_path / "a")
    cold_result = cold.train()
    assert cold.cache.misses > 0 and any((tmp_path / "cache").rglob("*.safetensors"))
    warm = LoraTrainer(cfg, output_dir=tmp_path / "b")
    assert warm.train().losses == cold_result.losses
    assert warm.cache.misses == 0 and warm.cache.hits == cold.cache.misses + cold.cache.hits


def test_validation_reports_paper_metrics(tiny_data, tmp_path):
    cfg = _config(tiny_data, max_steps=1, val_data=str(Path(tiny_data).with_name("val_manifest.yaml")))
    result = LoraTrainer(cfg, output_dir=tmp_path).train()
    m = result.validations[1]
    assert m["sequences"] == 1 and 0.0 <= m["delta_1.25"] <= 1.0 and m["rel_pct"] > 0 and m["rmse_cm"] > 0
    with (tmp_path / "val_metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1]


def _args(**kw):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    ns = parser.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_cli_make_data_train_resume_and_export(tmp_path, capsys):
    assert cli.run(_args(make_tiny_dataset=str(tmp_path / "data"))) == 0
    manifest = tmp_path / "data" / "manifest.yaml"
    assert manifest.is_file()
    common = dict(config=str(CONFIGS / "tiny_cpu.yaml"), data=str(manifest), val_data="", output=str(tmp_path / "run"))
    assert cli.run(_args(**common, max_steps=2)) == 0
    assert cli.run(_args(**common, max_steps=3, resume="auto")) == 0
    assert "step 3/200" in capsys.readouterr().out
    out = tmp_path / "lora.safetensors"
    assert cli.run(_args(export=str(tmp_path / "run"), format="diffsynth", out=str(out))) == 0
    assert cli.run(_args(export=str(tmp_path / "run"), format="diffusers", out=str(tmp_path / "lora_dir"))) == 0
    assert out.is_file() and (tmp_path / "lora_dir" / "pytorch_lora_weights.safetensors").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: m.yaml\nlora: {rank: -1}\n")
    assert cli.run(_args(config=str(bad))) == 2
    assert "key 'lora.rank'" in capsys.readouterr().err
