"""Input encoders: Bernoulli rate code statistics, replayable per-sample randomness, input checks."""

import numpy as np
import pytest

from apical.models.encoders import bernoulli_rate_raster, encode_batch, sample_rng, stable_int


def test_rate_matches_intensity():
    intensity = np.array([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    steps = 20000
    raster = bernoulli_rate_raster(intensity, steps, sample_rng(0, "input", 0))
    assert raster.shape == (steps, intensity.size) and raster.dtype == np.uint8
    assert set(np.unique(raster)) <= {0, 1}
    rate = raster.mean(axis=0)
    # 5 standard errors of a Bernoulli mean; exact at 0 and 1
    tolerance = 5 * np.sqrt(intensity * (1 - intensity) / steps)
    assert np.all(np.abs(rate - intensity) <= tolerance)
    assert rate[0] == 0.0 and rate[-1] == 1.0


def test_steps_are_independent():
    raster = bernoulli_rate_raster(np.full(200, 0.5), 2000, sample_rng(1, "input", 3)).astype(float)
    lag_correlation = np.mean((raster[1:] - 0.5) * (raster[:-1] - 0.5)) / 0.25
    assert abs(lag_correlation) < 0.02


def test_stable_int_is_deterministic_and_distinct():
    assert stable_int("input") == stable_int("input")
    assert stable_int("input") != stable_int("sleep")
    # pinned values: the key and the draws must not change between processes or releases
    # (Python's hash() of a str would), or stored rasters could not be replayed
    assert stable_int("input") == 1336109935853661385
    assert sample_rng(2, "input", 0).random(3).tolist() == [
        0.19616263882067086,
        0.07466614255646076,
        0.2597898422415925,
    ]


def test_sample_rng_keys():
    draw = lambda seed, purpose, index: sample_rng(seed, purpose, index).random(4)
    assert np.array_equal(draw(2, "input", 7), draw(2, "input", 7))
    assert not np.array_equal(draw(2, "input", 7), draw(2, "input", 8))
    assert not np.array_equal(draw(2, "input", 7), draw(2, "sleep", 7))
    assert not np.array_equal(draw(2, "input", 7), draw(3, "input", 7))


def test_encode_batch_is_chunk_independent():
    rng = np.random.default_rng(0)
    intensities = rng.random((10, 50))
    whole = encode_batch(intensities, 8, seed=2, first_index=100)
    assert whole.shape == (10, 8, 50) and whole.dtype == np.uint8
    parts = np.concatenate(
        [
            encode_batch(intensities[:3], 8, seed=2, first_index=100),
            encode_batch(intensities[3:4], 8, seed=2, first_index=103),
            encode_batch(intensities[4:], 8, seed=2, first_index=104),
        ]
    )
    assert np.array_equal(whole, parts)
    single = bernoulli_rate_raster(intensities[5], 8, sample_rng(2, "input", 105))
    assert np.array_equal(whole[5], single)
    assert not np.array_equal(whole, encode_batch(intensities, 8, seed=3, first_index=100))


@pytest.mark.parametrize("bad", [np.array([0.2, 1.5]), np.array([-0.1, 0.5]), np.array([np.nan, 0.5])])
def test_intensity_out_of_range_is_an_error(bad):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        bernoulli_rate_raster(bad, 5, sample_rng(0, "input", 0))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        encode_batch(bad[None, :], 5, seed=0, first_index=0)


def test_shape_and_time_step_errors():
    with pytest.raises(ValueError, match="time_steps"):
        bernoulli_rate_raster(np.zeros(3), 0, sample_rng(0, "input", 0))
    with pytest.raises(ValueError, match="one sample"):
        bernoulli_rate_raster(np.zeros((2, 3)), 5, sample_rng(0, "input", 0))
    with pytest.raises(ValueError, match=r"\[N, n_inputs\]"):
        encode_batch(np.zeros(3), 5, seed=0, first_index=0)
