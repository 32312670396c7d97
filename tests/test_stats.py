"""Confidence intervals and McNemar's test against values computed independently."""

import math

import numpy as np
import pytest

from noisy_mnist.stats import holm, mcnemar_exact, mean_ci, t_cdf, t_quantile


# two-sided 95 % critical values of Student's t, from printed statistical tables
@pytest.mark.parametrize(
    "df, value", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)]
)
def test_t_quantile_matches_tables(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)


def test_t_cdf_closed_forms():
    # df = 1 is the Cauchy distribution: F(x) = 1/2 + atan(x) / pi
    for x in (-3.0, -0.5, 0.7, 10.0):
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-10)
    # df = 2: F(x) = 1/2 + x / (2 sqrt(2 + x^2))
    for x in (-2.0, 0.3, 4.0):
        assert t_cdf(x, 2) == pytest.approx(
            0.5 + x / (2 * math.sqrt(2 + x * x)), abs=1e-10
        )


def test_mean_ci_of_three_values():
    values = [0.90, 0.92, 0.94]
    mean, std, low, high = mean_ci(values)
    assert mean == pytest.approx(0.92)
    assert std == pytest.approx(0.02)
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert (low, high) == pytest.approx((0.92 - half, 0.92 + half), abs=1e-6)


def test_mean_ci_of_one_value_has_no_interval():
    mean, std, low, high = mean_ci([0.9])
    assert mean == 0.9 and math.isnan(std) and math.isnan(low) and math.isnan(high)


def test_mcnemar_exact_against_direct_binomial_sum():
    b, c = 3, 14
    n = b + c
    direct = 2 * sum(math.comb(n, i) for i in range(b + 1)) / 2**n
    assert mcnemar_exact(b, c) == pytest.approx(direct, rel=1e-12)
    assert mcnemar_exact(c, b) == pytest.approx(direct, rel=1e-12)


def test_mcnemar_edge_cases():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(7, 7) == 1.0  # capped at 1
    # large counts do not overflow; a big imbalance is overwhelmingly significant
    assert mcnemar_exact(4000, 6000) < 1e-80
    assert np.isfinite(mcnemar_exact(50_000, 50_100))


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
