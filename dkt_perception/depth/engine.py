"""DKT depth inference: offline (any length, windowed) and streaming (frame by frame).

Offline (:meth:`DKTDepthEngine.infer_video`): frames are resized, padded to
4N+1, VAE-encoded causally chunk by chunk, the depth latent is sampled from
seeded noise with the flow-matching Euler sampler (velocity blended over
windows of ``window`` latents with ``overlap``), then decoded latent by latent
and turned into float32 relative disparity at the input size. Memory for the
VAE does not grow with the video length.

Streaming (:class:`DKTStream`): frames are pushed one at a time. Each frame is
VAE-encoded exactly once (causal cache): frame 1 alone makes latent 0, then
every 4 frames make one latent. Every ``stride`` new latents the DiT samples
the depth of the last ``window`` RGB latents (fresh noise per absolute latent
index, so overlapping windows see the same noise), the newest latents are
decoded (decoder cache kept across runs) and emitted. To keep consecutive
outputs consistent, the last already-emitted latent is decoded again from the
new window (from a snapshot of the decoder cache) and the new frames get the
least-squares scale + shift that maps that re-decoded overlap onto what was
emitted before.

Latency / throughput trade-off (per DiT run: ``steps`` DiT passes over
``window`` latents, plus decoding ``stride + 1`` latents):

* a frame waits for its 4-frame chunk and for ``stride`` chunks, i.e. up to
  ``4 * stride - 1`` frame periods, plus the compute of one run;
* throughput per output frame ~ encode(1 frame) + steps * DiT(window latents)
  / (4 * stride) + decode((stride + 1) latents) / (4 * stride);
* a larger window gives more temporal context (better consistency) at a
  cost roughly linear in the window (attention grows quadratically).

Measured (``dkt-stack bench depth``, 2 shared CPU cores, float32, 128 x 224,
random weights; CPU figures are noisy because the cores are shared):

* tiny config, 5 steps, offline 9 frames: encode 281, denoise 42, decode 855,
  total 1178 ms/frame; streaming 17 frames (window 6, stride 1): encode 284,
  denoise 22, decode 604, total 910 ms/frame, worst frame latency 6.6 s,
  1.0 frames VAE-encoded per input frame. (The tiny DiT is cheap, so the VAE
  dominates; streaming decodes 2 latents per run: the overlap + the new one.)
* 1.3B architecture, 1 step, offline 5 frames: encode 4427, denoise 2758,
  decode 2241, total 9427 ms/frame, peak RSS 7.6 GB.

Estimated for DKT-1.3B at 832 x 480 on an L20-class GPU from the paper's
figures (encode 46.5, denoise 52.9, decode 68.1 ms/frame offline with 21-latent
windows): streaming with window 6 / stride 1 runs 5 DiT passes over 6 latents
(~6/21 of the tokens, ~0.3 s) per 4 new frames and decodes 2 latents
(~0.55 s): ~0.9 s of compute per 4 frames, i.e. ~4.5 output fps and a
worst-case latency of ~3 frame periods + ~1 s. Stride 2 halves the DiT and
overlap-decode cost per frame and adds 4 frame periods of latency; window 3
halves the DiT cost again at the price of less temporal context.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from dkt_perception.depth.conditioning import image_context
from dkt_perception.depth.interface import DepthInputError, check_rgb_frame, check_rgb_video
from dkt_perception.depth.preprocess import (
    FrameGeometry,
    check_model_size,
    decoded_to_disparity,
    disparity_to_input_size,
    rgb_to_model,
)
from dkt_perception.depth.sampler import blended_velocity, dkt_sigmas, initial_noise, sample_flow_euler, window_starts
from dkt_perception.depth.vae_stream import CausalDecoderStream, CausalEncoderStream
from dkt_perception.depth.wan_model import denormalize_latents, normalize_latents

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: a long run reports how far it is (total None = not known yet)
Progress = Callable[[str, int, "int | None"], None]

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StageTimer:
    """Accumulates wall-clock ms per stage (CUDA-synchronised)."""

    device: torch.device
    ms: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def stage(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                _sync(timer.device)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                _sync(timer.device)
                timer.ms[name] += (time.perf_counter() - self.t0) * 1e3

        return _Ctx()


class DKTDepthEngine:
    """The DiT + VAE + constant conditioning, with DKT's sampler. No I/O, no ROS.

    transformer: diffusers ``WanTransformer3DModel`` (48 in / 16 out channels).
    vae: diffusers ``AutoencoderKLWan``. text_context: (1, 512, text_dim).
    """

    def __init__(self, transformer, vae, text_context: torch.Tensor, *, steps: int = 5, shift: float = 5.0, window: int = 21,
                 overlap: int = 3, height: int = 480, width: int = 832, seed: int = 0, rotate_portrait: bool = False,
                 zero_noise: bool = False) -> None:
        check_model_size(height, width)
        self.sigmas = dkt_sigmas(steps, shift)
        if window < 1 or not 0 <= overlap < window:
            raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
        self.transformer, self.vae = transformer, vae
        # compute dtypes from the input layers (norms/modulation tables may be kept in float32)
        self.device, self.dtype = transformer.patch_embedding.weight.device, transformer.patch_embedding.weight.dtype
        self.vae_dtype = vae.encoder.conv_in.weight.dtype
        self.text = text_context.to(self.device, self.dtype)
        self.image = image_context(transformer.config.image_dim, device=self.device, dtype=self.dtype) if transformer.config.image_dim else None
        self.window, self.overlap, self.height, self.width = window, overlap, height, width
        self.seed, self.rotate_portrait = seed, rotate_portrait
        self.zero_noise = zero_noise  # one-step deterministic models are trained from zero "noise"
        self.z_dim = vae.config.z_dim

    # ------------------------------------------------------------ DiT

    @torch.no_grad()
    def velocity(self, x: torch.Tensor, rgb_latents: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """DiT velocity for noisy depth latents ``x`` given normalised RGB latents (both (1, 16, T, h, w))."""
        hidden = torch.cat([x, rgb_latents, torch.zeros_like(x)], dim=1).to(self.dtype)
        t = (sigma.double() * 1000.0).float().reshape(1).to(self.device)
        out = self.transformer(hidden_states=hidden, timestep=t, encoder_hidden_states=self.text,
                               encoder_hidden_states_image=self.image, return_dict=False)[0]
        return out.float()

    def sample_depth_latents(self, rgb_latents: torch.Tensor, noise: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Normalised depth latents (float32) from normalised RGB latents, windowed and blended per step.

        ``progress("denoise", done, total)`` is called after every DiT call (``total`` = steps x windows).
        """
        length = rgb_latents.shape[2]
        calls_per_step = 1 if length <= self.window else len(window_starts(length, self.window, self.overlap))
        total, done = (len(self.sigmas) - 1) * calls_per_step, 0

        def step_velocity(x, sigma):
            def window_velocity(xs, cs):
                nonlocal done
                v = self.velocity(xs, cs, sigma)
                done += 1
                if progress is not None:
                    progress("denoise", done, total)
                return v

            return blended_velocity(window_velocity, x, rgb_latents, self.window, self.overlap)

        return sample_flow_euler(step_velocity, noise.float(), self.sigmas)

    def noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        """The sampler's starting point: seeded standard normal noise, or zeros with ``zero_noise``."""
        return torch.zeros(shape, device=self.device) if self.zero_noise else initial_noise(shape, seed, self.device)

    # ------------------------------------------------------------ offline

    @torch.no_grad()
    def infer_video(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """rgb uint8 (N, H, W, 3) -> float32 (N, H, W) relative disparity in [0, 1], and timings (ms, totals)."""
        check_rgb_video(rgb)
        timings: dict[str, float] = {}
        out = np.empty(rgb.shape[:3], dtype=np.float32)
        for i, disparity in enumerate(self.infer_frames(iter(rgb), timings=timings)):
            out[i] = disparity
        return out, timings

    @torch.no_grad()  # on a generator torch enters/leaves no_grad around each step, not while the caller runs
    def infer_frames(self, frames: Iterable[np.ndarray], *, timings: dict[str, float] | None = None,
                     progress: Progress | None = None) -> Iterator[np.ndarray]:
        """The offline result of :meth:`infer_video`, frame by frame, from frames read lazily.

        frames: uint8 (H, W, 3) RGB, one size. Yields float32 (H, W) relative
        disparity per input frame, in order, once the whole sequence has been
        encoded and denoised (every frame sees its past and its future). Memory:
        the VAE runs in causal chunks (1 frame, then 4) and the DiT in windows, so
        only the latents (1/48 of the model-size frames) are held for the whole
        video, never its frames. ``timings`` receives ms per stage and ``total``
        (time spent outside the engine, between yields, is not counted);
        ``progress(stage, done, total)`` reports "encode" (frames, total None),
        "denoise" (DiT calls) and "decode" (frames).
        """
        timer = StageTimer(self.device)
        outside = 0.0
        t_all = time.perf_counter()
        cond, geom, n = self._encode_frames(iter(frames), timer, progress)
        with timer.stage("denoise"):
            noise = self.noise(tuple(cond.shape), self.seed)
            depth = denormalize_latents(self.vae, self.sample_depth_latents(cond, noise, progress)).to(self.vae_dtype)
        del cond, noise
        chunks = CausalDecoderStream(self.vae).decode_video(depth)
        frame = 0
        while frame < n:
            with timer.stage("decode"):
                decoded = next(chunks)
                take = min(decoded.shape[2], n - frame)
                disparity = disparity_to_input_size(decoded_to_disparity(decoded[:, :, :take]), geom)
            frame += take
            if progress is not None:
                progress("decode", frame, n)
            for d in disparity:
                t_out = time.perf_counter()
                yield d
                outside += time.perf_counter() - t_out
        if timings is not None:
            timings.update(timer.ms)
            timings["total"] = (time.perf_counter() - t_all - outside) * 1e3

    def _encode_frames(self, frames: Iterator[np.ndarray], timer: StageTimer, progress: Progress | None):
        """Causal VAE encode of frames pulled 1, then 4 at a time (a short last chunk is padded with its last frame).

        Returns (normalised RGB latents (1, 16, T, h, w) float32, frame geometry, frame count).
        """
        enc = CausalEncoderStream(self.vae)
        latents, geom, shape, n = [], None, None, 0
        while True:
            need = enc.frames_expected
            chunk = list(itertools.islice(frames, need))
            for k, rgb in enumerate(chunk):
                check_rgb_frame(rgb)
                shape = shape or rgb.shape
                if rgb.shape != shape:
                    raise DepthInputError(f"frame {n + k} is {rgb.shape[1]}x{rgb.shape[0]} but frame 0 is {shape[1]}x{shape[0]}",
                                          fix="give frames of one size")
            if not chunk:
                break
            n += len(chunk)
            real = len(chunk)
            chunk += [chunk[-1]] * (need - real)  # pad to 4N+1 with the last frame, as the release does
            with timer.stage("encode"):
                video, geom = rgb_to_model(np.stack(chunk), self.height, self.width, rotate_portrait=self.rotate_portrait, device=self.device)
                latents.append(enc.push(video.to(self.vae_dtype)))
            if progress is not None:
                progress("encode", n, None)
            if real < need:
                break
        if n == 0:
            raise DepthInputError("no frames to infer depth for", fix="give at least one frame")
        with timer.stage("encode"):
            enc.reset()
            cond = normalize_latents(self.vae, torch.cat(latents, dim=2).float())
        return cond, geom, n

    def stream(self, stride: int = 1, window: int = 6) -> DKTStream:
        return DKTStream(self, window=window, stride=stride)


@dataclass
class _Latent:
    index: int
    rgb: torch.Tensor  # normalised RGB latent (1, 16, 1, h, w)
    stamps: list[int | None]  # per decoded frame; None = padding frame (not emitted)
    pushed_at: list[float]
    encode_ms: float


def fit_scale_shift(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least-squares ``s, t`` minimising ``|s * pred + t - target|^2`` over all finite pixels."""
    ok = torch.isfinite(pred) & torch.isfinite(target)
    p, q = pred[ok].double(), target[ok].double()
    if p.numel() < 2:
        return 1.0, 0.0
    var = ((p - p.mean()) ** 2).sum()
    if var <= 1e-18:
        return 1.0, float(q.mean() - p.mean())
    s = ((p - p.mean()) * (q - q.mean())).sum() / var
    return float(s), float(q.mean() - s * p.mean())


class DKTStream:
    """Frame-by-frame DKT: push frames, get per-frame disparity with bounded latency (see module docstring).

    window: RGB latents the DiT sees per run (>= 1). stride: new latents between runs (>= 1, <= window).
    """

    def __init__(self, engine: DKTDepthEngine, *, window: int = 6, stride: int = 1) -> None:
        if window < 1 or not 1 <= stride <= window:
            raise ValueError(f"need window >= 1 and 1 <= stride <= window, got window={window}, stride={stride}")
        self.engine, self.window, self.stride = engine, window, stride
        self.encoder = CausalEncoderStream(engine.vae)
        self.decoder = CausalDecoderStream(engine.vae)
        self.stage_ms: dict[str, float] = collections.defaultdict(float)  # cumulative over the stream's life (benchmarks)
        self.reset()

    def reset(self) -> None:
        self.encoder.reset()
        self.decoder.reset()
        self._pending: list[tuple[np.ndarray, int, float]] = []
        self._latents: collections.deque[_Latent] = collections.deque(maxlen=self.window)
        self._uncommitted = 0
        self._next_index = 0
        self._geom: FrameGeometry | None = None
        self._shape: tuple[int, ...] | None = None
        self._snapshot = None  # decoder state before the last committed latent
        self._last_emitted: torch.Tensor | None = None  # model-size aligned disparity of the last committed latent
        self.frames_encoded = 0
        self.frames_pushed = 0

    @torch.no_grad()
    def push(self, rgb: np.ndarray, stamp_ns: int) -> list[tuple[int, np.ndarray, dict[str, float]]]:
        """Add one uint8 (H, W, 3) frame; returns (stamp_ns, disparity (H, W) float32, timings_ms) for ready frames."""
        check_rgb_frame(rgb)
        if self._shape is None:
            self._shape = rgb.shape
        elif rgb.shape != self._shape:
            raise DepthInputError(f"frame size changed mid-stream: {self._shape} -> {rgb.shape}; call reset() for a new sequence")
        self.frames_pushed += 1
        self._pending.append((rgb, int(stamp_ns), time.perf_counter()))
        if len(self._pending) < self.encoder.frames_expected:
            return []
        self._encode_pending(len(self._pending))
        if self._uncommitted >= self.stride:
            return self._run()
        return []

    @torch.no_grad()
    def flush(self) -> list[tuple[int, np.ndarray, dict[str, float]]]:
        """End of stream: encode a partial chunk (padded with its last frame), run, and return what is left; then reset."""
        results = []
        if self._pending:
            real = len(self._pending)
            while len(self._pending) < self.encoder.frames_expected:
                self._pending.append((self._pending[-1][0], None, self._pending[-1][2]))
            self._encode_pending(real)
        if self._uncommitted:
            results = self._run()
        self.reset()
        return results

    def _encode_pending(self, real: int) -> None:
        e = self.engine
        t0 = time.perf_counter()
        frames = np.stack([f for f, _, _ in self._pending])
        video, geom = rgb_to_model(frames, e.height, e.width, rotate_portrait=e.rotate_portrait, device=e.device)
        self._geom = self._geom or geom
        z = self.encoder.push(video.to(e.vae_dtype))
        self.frames_encoded += real
        _sync(e.device)
        self.stage_ms["encode"] += (time.perf_counter() - t0) * 1e3
        stamps = [s for _, s, _ in self._pending]
        self._latents.append(_Latent(self._next_index, normalize_latents(e.vae, z.float()), stamps,
                                     [p for _, _, p in self._pending], (time.perf_counter() - t0) * 1e3))
        self._next_index += 1
        self._uncommitted += 1
        self._pending = []

    def _run(self) -> list[tuple[int, np.ndarray, dict[str, float]]]:
        e = self.engine
        lat = list(self._latents)
        cond = torch.cat([latent.rgb for latent in lat], dim=2)
        t0 = time.perf_counter()
        # Noise by absolute latent index: overlapping windows start from the same noise for the same latent.
        noise = torch.cat([e.noise((1, e.z_dim, 1, *cond.shape[-2:]), e.seed * 1_000_003 + latent.index) for latent in lat], 2)
        depth = denormalize_latents(e.vae, e.sample_depth_latents(cond, noise)).to(e.vae_dtype)
        _sync(e.device)
        t1 = time.perf_counter()
        n_new = self._uncommitted
        first_new = len(lat) - n_new
        scale, shift = 1.0, 0.0
        if self._snapshot is not None and first_new >= 1:
            # Re-decode the last emitted latent from this window, from the cache state it was first decoded with.
            self.decoder.restore(self._snapshot)
            overlap = decoded_to_disparity(self.decoder.push(depth[:, :, first_new - 1 : first_new]))
            scale, shift = fit_scale_shift(overlap, self._last_emitted)
        elif self._snapshot is not None:
            log.debug("stream window holds no already-emitted latent: consecutive outputs are not aligned")
        results = []
        for j in range(first_new, len(lat)):
            if j == len(lat) - 1:
                self._snapshot = self.decoder.snapshot()
            disp = decoded_to_disparity(self.decoder.push(depth[:, :, j : j + 1])) * scale + shift
            if j == len(lat) - 1:
                self._last_emitted = disp
            full = disparity_to_input_size(disp, self._geom)
            now = time.perf_counter()
            for k, stamp in enumerate(lat[j].stamps):
                if stamp is None:
                    continue
                results.append((stamp, full[k], {"encode": lat[j].encode_ms, "denoise": (t1 - t0) * 1e3,
                                                 "decode": (now - t1) * 1e3, "latency": (now - lat[j].pushed_at[k]) * 1e3,
                                                 "align_scale": scale, "align_shift": shift}))
        _sync(e.device)
        self.stage_ms["denoise"] += (t1 - t0) * 1e3
        self.stage_ms["decode"] += (time.perf_counter() - t1) * 1e3
        self._uncommitted = 0
        return results
