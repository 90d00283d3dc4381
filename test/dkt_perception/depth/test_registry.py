"""The backend registry, the raw backend (exactly 1/z) and Depth Anything V2 with a tiny random config."""

import numpy as np
import pytest
import torch
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

from dkt_perception.depth import DepthConfig, DepthFrame, DepthInputError, MissingWeightsError, UnknownBackendError, create_backend
from dkt_perception.depth.depth_anything_backend import DepthAnythingBackend


def _rgb(n=2, h=20, w=30):
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_raw_backend_is_exactly_inverse_depth():
    b = create_backend("raw", DepthConfig(backend="raw"))
    assert b.name == "raw" and b.device == "cpu"
    z = np.random.default_rng(1).uniform(0.2, 3.0, (2, 20, 30)).astype(np.float32)
    z[0, 0, 0], z[0, 0, 1], z[1, 5, 5] = 0.0, np.nan, -1.0
    out = b.infer_video(_rgb(), z).disparity
    ok = np.isfinite(z) & (z > 0)
    assert np.array_equal(out[ok], np.float32(1.0) / z[ok])
    assert np.isnan(out[~ok]).all() and (~ok).sum() == 3
    r = b.stream(DepthFrame(_rgb(1)[0], 42, z[1]))
    assert len(r) == 1 and r[0].stamp_ns == 42 and np.array_equal(r[0].disparity, out[1], equal_nan=True)
    with pytest.raises(DepthInputError, match="raw_depth_m"):
        b.stream(DepthFrame(_rgb(1)[0], 0))
    with pytest.raises(DepthInputError, match="shape"):
        b.infer_video(_rgb(), z[:, :10])


def test_registry_builds_dkt_and_rejects_unknown():
    b = create_backend("dkt", DepthConfig(model="tiny", random_weights=True, height=16, width=16, steps=1, device="cpu"))
    assert b.name == "dkt" and b.device == "cpu"
    assert b.infer_video(_rgb(1)).disparity.shape == (1, 20, 30)
    with pytest.raises(UnknownBackendError, match="depth_anything_v2"):
        create_backend("nope", DepthConfig())


def test_dkt_missing_weights_is_one_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="dkt-stack weights fetch"):
        create_backend("dkt", DepthConfig(weights_dir=str(tmp_path), device="cpu"))


def _tiny_depth_anything():
    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=28, patch_size=14,
                            out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, patch_size=14, neck_hidden_sizes=[8, 8, 8, 8],
                              fusion_hidden_size=8, head_hidden_size=8, reassemble_factors=[4, 2, 1, 0.5])
    return DepthAnythingForDepthEstimation(cfg)


def test_depth_anything_backend_tiny(tmp_path):
    model = _tiny_depth_anything()
    cfg = DepthConfig(backend="depth_anything_v2", device="cpu", depth_anything_size=28)
    b = DepthAnythingBackend(cfg, model=model)
    out = b.infer_video(_rgb(3))
    assert out.disparity.shape == (3, 20, 30) and out.disparity.dtype == np.float32
    assert np.allclose(out.disparity.reshape(3, -1).min(1), 0) and np.allclose(out.disparity.reshape(3, -1).max(1), 1)
    r = b.stream(DepthFrame(_rgb(1)[0], 5))
    assert np.allclose(r[0].disparity, out.disparity[0], atol=1e-5)
    # through the registry from a local folder
    model.save_pretrained(tmp_path / "da")
    b2 = create_backend("depth_anything_v2", DepthConfig(backend="depth_anything_v2", device="cpu", depth_anything_size=28,
                                                         depth_anything_model=str(tmp_path / "da")))
    assert np.allclose(b2.infer_video(_rgb(3)).disparity, out.disparity, atol=1e-5)
