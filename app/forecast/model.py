"""The forecaster: one pooled gradient-boosting model over all facilities (scikit-learn's
``HistGradientBoostingRegressor``), predicting the deviation from each facility's weekly
profile at the target time, with p10/p90 quantile models whose interval is calibrated on the
held-out end of the training window (conformalized quantile regression, per horizon).

Facilities with less than ``MIN_HISTORY_DAYS`` of observations are not in the model; they are
forecast by their weekly profile corrected by the current deviation (which fades with the
horizon), computed from the four weeks before the origin (``weekly_profile``); a facility
without any profile but with a last observation gets that observation (``persistence``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.special import ndtr
from threadpoolctl import threadpool_limits

from app.forecast import features as feat
from app.forecast.features import Origins, Profiles
from app.forecast.series import Grid

KIND = "gradient_boosting"
MEAN_LOSS = "squared_error"
TRAIN_HORIZONS = np.array([15, 30, 45, 60, 75, 90, 105, 120, 150, 180, 240])
MAX_HORIZON_MIN = 240
MIN_HISTORY_DAYS = 7
HOLDOUT_FRACTION = 0.15
Z80 = 1.2816  # the normal's 90th percentile: p10–p90 is ±Z80 σ
FALLBACK_HALF_LIFE_MIN = 60.0
FALLBACK_DAYS = 28
# OpenMP threads per fit and predict: on a busy machine more threads spin against each other
# (a fit took 6 × longer with one thread per core than with one thread, on 2 shared cores).
FIT_THREADS = 1


@dataclass
class Artifact:
    """What ``forecast train`` stores: regressors, interval calibration, facilities' profiles."""

    ids: list[str]
    mean: np.ndarray  # (F, 672) profile
    sd: np.ndarray
    observations: np.ndarray
    regressors: dict[str, Any]
    coef: np.ndarray  # per TRAIN_HORIZONS: the linear part (how today's deviation carries on)
    widen: np.ndarray  # per TRAIN_HORIZONS: added to both sides of the p10–p90 interval
    country: str
    train_since: datetime
    train_until: datetime
    kind: str = KIND
    blend: np.ndarray | None = None  # per TRAIN_HORIZONS: weight of the trees' correction (chosen on the holdout)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {fid: i for i, fid in enumerate(self.ids)}

    def profiles(self, ids: list[str]) -> Profiles:
        rows = [self.index[i] for i in ids]
        return Profiles(self.mean[rows].astype(np.float64), self.sd[rows].astype(np.float64), self.observations[rows])


@dataclass
class Prediction:
    """Shares free per origin: expected, p10, p90."""

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def regressors(seed: int = 0, fast: bool = False) -> dict[str, Any]:
    """The three estimators (expected deviation, its 10th and 90th percentiles)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    common = {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 200, "l2_regularization": 1.0,
              "early_stopping": True, "n_iter_no_change": 10, "random_state": seed}
    iters = 60 if fast else 150
    quantile = {**common, "learning_rate": 0.2}
    return {
        "mean": HistGradientBoostingRegressor(loss=MEAN_LOSS, max_iter=iters, **common),
        "p10": HistGradientBoostingRegressor(loss="quantile", quantile=0.1, max_iter=iters // 2, **quantile),
        "p90": HistGradientBoostingRegressor(loss="quantile", quantile=0.9, max_iter=iters // 2, **quantile),
    }


def sample_origins(grid: Grid, rows: np.ndarray, first_col: int, end_col: int, n: int,
                   rng: np.random.Generator) -> Origins:
    """Up to ``n`` random (facility, origin, horizon) with a known target before ``end_col``."""
    if rows.size == 0 or end_col - first_col < 2:
        return Origins(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    draw = int(n * 1.5) + 100
    r = rows[rng.integers(0, rows.size, draw)]
    c = rng.integers(first_col, end_col - 1, draw)
    h = TRAIN_HORIZONS[rng.integers(0, TRAIN_HORIZONS.size, draw)]
    t = c + h // 15
    ok = t < end_col
    ok[ok] &= ~np.isnan(grid.share[r[ok], t[ok]])
    return Origins(r[ok][:n], c[ok][:n], h[ok][:n].astype(np.float64))


LINEAR_FEATURES = [feat.FEATURES.index(n) for n in ("dev0", "dev1h", "dev3h", "slope1h")]


def fit_linear(x: np.ndarray, target: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per training horizon, least squares of the target deviation on today's deviations: the
    part of the forecast that is linear (a deviation fading with the horizon). The boosted
    trees model what is left, which they do better than a fine linear slope."""
    coef = np.zeros((TRAIN_HORIZONS.size, len(LINEAR_FEATURES) + 1))
    for i, hz in enumerate(TRAIN_HORIZONS):
        m = h == hz
        if m.sum() < 50:
            continue
        a = np.column_stack([x[m][:, LINEAR_FEATURES].astype(np.float64), np.ones(int(m.sum()))])
        coef[i] = np.linalg.lstsq(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ target[m], rcond=None)[0]
    return coef


def linear(coef: np.ndarray, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The linear part at any horizon (coefficients interpolated between training horizons)."""
    c = np.column_stack([np.interp(h, TRAIN_HORIZONS, coef[:, j]) for j in range(coef.shape[1])])
    return np.sum(x[:, LINEAR_FEATURES].astype(np.float64) * c[:, :-1], axis=1) + c[:, -1]


def _samples(grid: Grid, prof: Profiles, loo: np.ndarray, first: int, end: int, n: int, rng: np.random.Generator,
             country: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, target deviation and horizon of up to ``n`` random origins in ``[first, end)``."""
    o = sample_origins(grid, np.arange(grid.share.shape[0]), first, end, n, rng)
    x, base = feat.featurize(grid, prof, o, country=country, loo=loo)
    target = grid.share[o.rows, o.cols + (o.h_min // 15).astype(np.int64)] - base
    ok = ~np.isnan(target) & ~np.isnan(base)
    return x[ok], target[ok], o.h_min[ok]


def _sub_grid(grid: Grid, rows: np.ndarray) -> Grid:
    return Grid(grid.inv.subset([grid.inv.ids[r] for r in rows]), grid.end, grid.share[rows])


def _col_time(grid: Grid, col: int) -> datetime:
    from datetime import timedelta

    return grid.end - timedelta(minutes=15 * (grid.n - 1 - col))


def predict(art: Artifact, grid: Grid, prof: Profiles, o: Origins) -> Prediction:
    """The model's forecast for origins of ``grid`` (whose facilities are all in ``art``)."""
    x, base = feat.featurize(grid, prof, o, country=art.country)
    base = base + linear(art.coef, x, o.h_min)
    with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
        r = {name: est.predict(x) for name, est in art.regressors.items()}
    widen = np.interp(o.h_min, TRAIN_HORIZONS, art.widen)
    weight = np.ones(o.h_min.shape) if art.blend is None else np.interp(o.h_min, TRAIN_HORIZONS, art.blend)
    mean = np.clip(base + weight * r["mean"], 0.0, 1.0)
    lo = np.clip(np.minimum(base + r["p10"], mean) - widen, 0.0, 1.0)
    hi = np.clip(np.maximum(base + r["p90"], mean) + widen, 0.0, 1.0)
    return Prediction(mean, np.minimum(lo, mean), np.maximum(hi, mean))


def predict_profile(grid: Grid, prof: Profiles, o: Origins, *, country: str) -> Prediction:
    """The corrected weekly profile: profile at t + h plus today's deviation, fading with h."""
    x, base = feat.featurize(grid, prof, o, country=country)
    names = feat.FEATURES
    dev = x[:, names.index("dev1h")].astype(np.float64)
    fade = 0.5 ** (o.h_min / FALLBACK_HALF_LIFE_MIN)
    mean = np.clip(base + dev * fade, 0.0, 1.0)
    spread = Z80 * x[:, names.index("sd_tgt")].astype(np.float64)
    return Prediction(mean, np.clip(mean - spread, 0.0, 1.0), np.clip(mean + spread, 0.0, 1.0))


def p_any_free(mean_free: np.ndarray, lo_free: np.ndarray, total: np.ndarray) -> np.ndarray:
    """P(at least one space free): a normal through the expected count and its p10 (the lower
    tail is what matters), read at the continuity-corrected 0.5 spaces."""
    sigma = np.maximum((mean_free - lo_free) / Z80, 0.5)
    p = 1.0 - ndtr((0.5 - mean_free) / sigma)
    return np.where(total > 0, np.clip(p, 0.0, 1.0), 0.0)


def horizon_ok(h: float) -> bool:
    return math.isfinite(h) and 0 <= h <= MAX_HORIZON_MIN
