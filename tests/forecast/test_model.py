"""The model against the baselines on generated data with a known pattern (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.forecast import evaluation, series, synthetic, training
from app.forecast.series import Grid, Inventory


def grid_of(hist: synthetic.History) -> Grid:
    n = len(hist.ids)
    inv = Inventory(hist.ids, hist.ids, hist.capacity, np.ones(n, bool), np.zeros(n), ["Asia/Shanghai"] * n,
                    np.zeros(n), np.zeros(n), np.zeros(n, bool))
    share = np.vstack([series.carry_forward(r / c, series.CARRY_SLOTS) for r, c in zip(hist.free, hist.capacity,
                                                                                        strict=True)])
    return Grid(inv, hist.start + timedelta(minutes=15 * (share.shape[1] - 1)), share)


@pytest.fixture(scope="module")
def backtest() -> dict[str, object]:
    hist = synthetic.generate(16, 63, start=datetime(2026, 8, 3, tzinfo=UTC), seed=11, prefix="m")
    full = grid_of(hist)
    split = full.n - 14 * 96
    train = Grid(full.inv, full.end - timedelta(minutes=15 * (full.n - split)), full.share[:, :split])
    art, _ = training.fit(train, country="CN", max_samples=120_000, fast=True)
    assert art is not None
    hd = evaluation.holdout(full, art.profiles(art.ids), art, split, country="CN")
    return evaluation.summarize(hd, horizons=(30, 60, 90, 120))


@pytest.mark.parametrize("h", ["30", "60", "90", "120"])
def test_the_model_beats_the_baselines(backtest: dict[str, object], h: str) -> None:
    row = backtest["horizons"][h]  # type: ignore[index]
    model = row["model"]["mae_spaces"]
    naive = min(row["persistence"]["mae_spaces"], row["last_week"]["mae_spaces"])
    assert model <= 0.8 * naive
    assert model <= row["corrected_profile"]["mae_spaces"]
    assert 0.7 <= row["coverage_p10_p90"] <= 0.9


def test_too_little_history_is_left_out_of_the_model() -> None:
    hist = synthetic.generate(3, 30, start=datetime(2026, 8, 3, tzinfo=UTC), seed=2, prefix="few", closures=False)
    hist.free[2, : -4 * 96] = np.nan  # the third lot has four days of data
    art, metrics = training.fit(grid_of(hist), country="CN", max_samples=20_000, fast=True)
    assert art is not None
    assert art.ids == ["few-0000", "few-0001"]
    assert metrics["facilities"] == 2
    hist.free[:, : -4 * 96] = np.nan
    none, why = training.fit(grid_of(hist), country="CN", max_samples=20_000, fast=True)
    assert none is None
    assert "history" in why["reason"]
