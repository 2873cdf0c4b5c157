"""harness.report.stats against known values: SciPy's textbook example, clear and no differences, too little data."""

from __future__ import annotations

import pytest

from harness.report.stats import UTest, mann_whitney_u, min_p_value, new_run_p_value, relative_spread


def test_textbook_example() -> None:
    # The example in SciPy's documentation (Mann and Whitney 1947): U = 17, exact two-sided p = 1/9.
    test = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert test.u == 17 and test.p_value == pytest.approx(0.111111, rel=1e-5) and test.reason == ""


def test_clearly_different_samples_are_significant() -> None:
    assert mann_whitney_u([1, 2, 3], [4, 5, 6]) == UTest(0.0, pytest.approx(0.1))
    many = mann_whitney_u([1.0, 1.1, 1.05, 0.95, 1.02, 1.08], [2.0, 2.1, 2.2, 1.9, 2.05, 2.15])
    assert many.p_value is not None and many.p_value < 0.01
    tied = mann_whitney_u([1.0] * 30 + [2.0] * 10, [2.0] * 30 + [3.0] * 10)  # ties: the normal approximation
    assert tied.p_value is not None and tied.p_value < 1e-6


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]),
        ([5.0, 5.0, 5.0], [5.0, 5.0, 5.0]),  # no variance at all: SciPy alone would say NaN
        ([float(i) for i in range(40)], [float(i) + 0.5 for i in range(40)]),
    ],
)
def test_indistinguishable_samples_give_p_near_one(a: list[float], b: list[float]) -> None:
    p = mann_whitney_u(a, b).p_value
    assert p is not None and 0.8 < p <= 1.0


@pytest.mark.parametrize(("a", "b"), [([1.0], [2.0]), ([1.0], [2.0, 3.0, 4.0]), ([], [1.0, 2.0])])
def test_one_value_on_a_side_is_not_enough_data(a: list[float], b: list[float]) -> None:
    test = mann_whitney_u(a, b)
    assert test.p_value is None and test.u is None and test.reason.startswith("not enough data")


def test_min_p_value_and_spread() -> None:
    assert min_p_value(3, 3) == pytest.approx(0.1) and min_p_value(1, 1) == 1.0
    assert relative_spread([10.0, 10.0, 10.0]) == 0.0 and relative_spread([1.0]) == 0.0
    assert relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 3)
    assert relative_spread([-1.0, 0.0, 0.0, 1.0]) == float("inf")  # a zero median with spread: unbounded


def test_a_new_run_is_judged_against_how_the_runs_vary() -> None:
    runs = [-4.0, 0.0, 4.0, -2.0, 2.0]  # mean 0, sd 3.16; not all positive: the linear scale
    assert new_run_p_value(runs[:1], 50.0) is None  # one run says nothing of how runs vary
    assert new_run_p_value(runs, 0.0) == pytest.approx(1.0)
    # t = 10 / (3.162 * sqrt(1.2)) = 2.887 with 4 degrees of freedom: two-sided p = 0.0447 (tables)
    assert new_run_p_value(runs, -10.0) == pytest.approx(0.0447, abs=5e-4)
    assert new_run_p_value(runs, 10.0) == new_run_p_value(runs, -10.0)
    assert new_run_p_value([5.0, 5.0], 5.0) == 1.0 and new_run_p_value([5.0, 5.0], 4.0) == 0.0
    # Positive values (IOPS, latencies) vary by factors: a run at half the nights' median is as far off as one at
    # twice it, which on the linear scale it is not.
    nights = [50.0, 100.0, 200.0, 80.0, 125.0]  # geometric mean 100
    assert new_run_p_value(nights, 25.0) == pytest.approx(new_run_p_value(nights, 400.0))
