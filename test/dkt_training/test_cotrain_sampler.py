"""The co-training sampler: F = 4N+1 with N uniform, F == 1 mixes images and video, determinism, resume."""

from collections import Counter

import pytest
from scipy.stats import chisquare

from dkt_training.cotrain_sampler import CoTrainingSampler, SamplerStateError, SourceInfo

SOURCES = [
    SourceInfo("video_a", "video", 2.0, (120, 30, 8)),
    SourceInfo("images", "image", 1.0, (1,) * 50),
    SourceInfo("video_b", "video", 1.0, (21, 25)),
]


def test_frame_counts_are_4n_plus_1_with_n_uniform():
    s = CoTrainingSampler(SOURCES, batch_size=2, max_latent_n=5, seed=3)
    draws = 6000
    counts = Counter(s.plan(i).frames for i in range(draws))
    assert set(counts) == {1, 5, 9, 13, 17, 21}
    observed = [counts[4 * n + 1] for n in range(6)]
    assert sum(observed) == draws
    # uniform N: chi-square goodness of fit (fixed seed, so this is deterministic), and each bin within 10% of 1000
    assert chisquare(observed).pvalue > 0.01
    assert all(abs(c - draws / 6) < 100 for c in observed)


def test_f1_mixes_images_and_video_and_longer_batches_are_video_only():
    s = CoTrainingSampler(SOURCES, batch_size=4, max_latent_n=5, seed=0)
    by_f: dict[int, Counter] = {}
    for i in range(3000):
        plan = s.plan(i)
        assert len(plan.clips) == 4
        for c in plan.clips:
            by_f.setdefault(plan.frames, Counter())[c.dataset] += 1
            length = SOURCES[c.dataset].lengths[c.sequence]
            assert c.start >= 0 and c.start + plan.frames <= length  # the clip fits in its sequence
    assert by_f[1][1] > 0 and by_f[1][0] > 0 and by_f[1][2] > 0  # images and both videos at F == 1
    for f in (5, 9, 13, 17, 21):
        assert by_f[f][1] == 0  # never images
    # F == 1: weights 2:1:1 -> dataset probabilities 0.5 / 0.25 / 0.25
    n1 = sum(by_f[1].values())
    assert abs(by_f[1][0] / n1 - 0.5) < 0.04 and abs(by_f[1][1] / n1 - 0.25) < 0.04
    # F == 21: only sequences with >= 21 frames (video_a seqs 0 and 1, video_b seqs 0 and 1; not video_a's 8-frame seq 2)
    plans = [s.plan(i) for i in range(3000)]
    seqs = {(c.dataset, c.sequence) for p in plans if p.frames == 21 for c in p.clips}
    assert seqs == {(0, 0), (0, 1), (2, 0), (2, 1)}


def test_plans_are_deterministic_and_resumable():
    a = CoTrainingSampler(SOURCES, batch_size=2, max_latent_n=5, seed=7)
    first = [next(a) for _ in range(10)]
    state = a.state_dict()
    rest = [next(a) for _ in range(5)]
    b = CoTrainingSampler(SOURCES, batch_size=2, max_latent_n=5, seed=7)
    b.load_state_dict(state)
    assert [next(b) for _ in range(5)] == rest
    assert first == [CoTrainingSampler(SOURCES, 2, 5, 7).plan(i) for i in range(10)]
    assert CoTrainingSampler(SOURCES, 2, 5, 8).plan(0) != first[0]
    with pytest.raises(SamplerStateError, match="datasets, batch size or seed changed"):
        CoTrainingSampler(SOURCES[:2], 2, 5, 7).load_state_dict(state)


def test_start_stride_and_impossible_frame_counts():
    s = CoTrainingSampler(SOURCES, batch_size=3, max_latent_n=5, seed=1, start_stride=8)
    assert all(c.start % 8 == 0 for i in range(500) for c in s.plan(i).clips)
    with pytest.raises(ValueError, match=r"F=25 .*lower max_latent_n to 5"):
        CoTrainingSampler([SourceInfo("v", "video", 1.0, (22,)), SourceInfo("i", "image", 1.0, (1,))], 1, max_latent_n=6)
    with pytest.raises(ValueError, match="F=5"):
        CoTrainingSampler([SourceInfo("i", "image", 1.0, (1, 1))], 1, max_latent_n=1)
    assert {CoTrainingSampler([SourceInfo("i", "image", 1.0, (1, 1))], 1, max_latent_n=0).plan(i).frames for i in range(20)} == {1}
