"""Training the forecaster: fit on a grid of history, calibrate and score on held-out days."""

from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from app.forecast import evaluation
from app.forecast import features as feat
from app.forecast import model as fm
from app.forecast.series import Grid


def fit(grid: Grid, *, country: str, max_samples: int = 300_000, seed: int = 0,
        fast: bool = False) -> tuple[fm.Artifact | None, dict[str, Any]]:
    """Train on ``grid`` (its last ``fm.HOLDOUT_FRACTION`` held out for calibration and metrics).

    Returns (None, metrics) when no facility has enough history for a model.
    """
    pos, hol = feat.slots(grid, country)
    slot = feat.effective_slot(pos, hol)
    valid_days = (~np.isnan(grid.share)).sum(axis=1) / 96
    rows = np.flatnonzero(valid_days >= fm.MIN_HISTORY_DAYS)
    split = grid.n - max(int(grid.n * fm.HOLDOUT_FRACTION), int(fm.TRAIN_HORIZONS.max() // 15) * 4)
    if rows.size == 0 or split <= feat.LOOKBACK + 96:
        return None, {"facilities": 0, "reason": f"no facility with {fm.MIN_HISTORY_DAYS} days of history"}
    sub = fm._sub_grid(grid, rows)
    train = Grid(sub.inv, fm._col_time(sub, split - 1), sub.share[:, :split])
    train_slot = slot[rows][:, :split]
    prof_train = feat.fit_profiles(train.share, train_slot)
    loo = feat.leave_one_out(train.share, train_slot)
    rng = np.random.default_rng(seed)
    stop = split - max(int(split * 0.15), 96)  # early stopping on the last days, not on random rows
    x, target, h = fm._samples(train, prof_train, loo, feat.LOOKBACK, stop, max_samples, rng, country)
    xv, tv, hv = fm._samples(train, prof_train, loo, stop, split, max(max_samples // 5, 1000), rng, country)
    coef = fm.fit_linear(x, target, h)
    target, tv = target - fm.linear(coef, x, h), tv - fm.linear(coef, xv, hv)
    models = fm.regressors(seed, fast)
    with threadpool_limits(limits=fm.FIT_THREADS, user_api="openmp"):
        for est in models.values():
            est.fit(x, target, X_val=xv, y_val=tv)
    final = feat.fit_profiles(sub.share, slot[rows])
    art = fm.Artifact(sub.inv.ids, final.mean.astype(np.float32), final.sd.astype(np.float32), final.observations,
                   models, coef, np.zeros(fm.TRAIN_HORIZONS.size), country, fm._col_time(grid, 0), grid.end)
    art.blend = evaluation.tree_weights(sub, prof_train, art, split, country=country)
    holdout = evaluation.holdout(sub, prof_train, art, split, country=country)
    art.widen = evaluation.conformal_widen(holdout)
    metrics = evaluation.summarize(evaluation.holdout(sub, prof_train, art, split, country=country))
    metrics.update({"facilities": int(rows.size), "samples": int(target.size),
                    "holdout_from": fm._col_time(grid, split).isoformat()})
    return art, metrics
