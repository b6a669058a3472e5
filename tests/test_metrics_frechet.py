"""The Frechet distance against SciPy's matrix square root."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from text2sign.metrics import feature_stats, frechet_distance


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


@pytest.mark.parametrize("dim", [1, 8, 32])
def test_matches_scipy_on_gaussian_features(dim):
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((400, dim))
    b = rng.standard_normal((300, dim)) @ rng.standard_normal((dim, dim)) * 0.7 + 0.5
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-8)


@pytest.mark.parametrize("shape", [(50, 8), (10, 64)])  # also fewer samples than dimensions
def test_identical_sets_are_zero(shape):
    feats = np.random.default_rng(0).standard_normal(shape)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-9)


def test_a_shift_adds_its_squared_length():
    feats = np.random.default_rng(1).standard_normal((100, 4))
    assert frechet_distance(feats, feats + [1.0, 2.0, 0.0, 0.0]) == pytest.approx(5.0, rel=1e-9)


def test_one_sample_has_no_covariance():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_stats(np.zeros((1, 3)))
