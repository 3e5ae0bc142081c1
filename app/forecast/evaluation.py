"""Honest evaluation: the model against the baselines any forecaster must beat.

On a chronological split (profiles and model from before the test period only), for every
facility, origin and horizon with a known outcome: the model, **persistence** (the last
observation), **last week** (the same slot a week earlier) and the **corrected profile** (the
weekly profile at t + h plus the observed minus the profile at t). MAE and RMSE in spaces and
as a share of capacity, and the coverage of the p10–p90 interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.forecast import features as feat
from app.forecast.calendar import WEEK_SLOTS
from app.forecast.features import Origins, Profiles
from app.forecast.series import Grid

REPORT_HORIZONS = (15, 30, 60, 90, 120)
MAX_ORIGINS = 40_000  # per horizon; origins are thinned evenly beyond this
METHODS = ("model", "persistence", "last_week", "corrected_profile")


def holdout(grid: Grid, prof: Profiles, art: Any, first_col: int, *, country: str,
            horizons: Any = None) -> dict[str, np.ndarray]:
    """Predictions and baselines for origins from ``first_col`` on (rows of ``grid`` = ``art``'s)."""
    from app.forecast import model as fm

    horizons = fm.TRAIN_HORIZONS if horizons is None else np.asarray(horizons)
    parts: list[dict[str, np.ndarray]] = []
    for h in horizons:
        o = _origins(grid, first_col, int(h))
        if o.rows.size == 0:
            continue
        x, base = feat.featurize(grid, prof, o, country=country)
        pred = fm.predict(art, grid, prof, o)
        t = o.cols + int(h) // 15
        p_now = x[:, feat.FEATURES.index("p_now")].astype(np.float64)
        last = grid.share[o.rows, o.cols]
        parts.append({
            "h": o.h_min, "y": grid.share[o.rows, t], "total": grid.inv.total[o.rows],
            "model": pred.mean, "lo": pred.lo, "hi": pred.hi, "persistence": last,
            "last_week": grid.share[o.rows, t - WEEK_SLOTS],
            "corrected_profile": np.clip(base + last - p_now, 0.0, 1.0),
        })
    if not parts:
        return {k: np.empty(0) for k in ("h", "y", "total", "lo", "hi", *METHODS)}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _origins(grid: Grid, first_col: int, h: int) -> Origins:
    """Every (facility, origin) whose outcome, last observation and last-week value are known."""
    first = max(first_col, WEEK_SLOTS)
    cols = np.arange(first, grid.n - h // 15)
    rows, cols = np.repeat(np.arange(grid.share.shape[0]), cols.size), np.tile(cols, grid.share.shape[0])
    t = cols + h // 15
    ok = (~np.isnan(grid.share[rows, t]) & ~np.isnan(grid.share[rows, cols])
          & ~np.isnan(grid.share[rows, t - WEEK_SLOTS])) if rows.size else np.zeros(0, bool)
    rows, cols = rows[ok], cols[ok]
    if rows.size > MAX_ORIGINS:
        pick = np.linspace(0, rows.size - 1, MAX_ORIGINS).astype(np.int64)
        rows, cols = rows[pick], cols[pick]
    return Origins(rows, cols, np.full(rows.size, float(h)))


BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def tree_weights(grid: Grid, prof: Profiles, art: Any, first_col: int, *, country: str) -> np.ndarray:
    """Per training horizon, the weight of the trees' correction over the linear part that
    gives the lowest MAE on the held-out days (0 where the trees do not generalise)."""
    from app.forecast import model as fm

    out = np.ones(fm.TRAIN_HORIZONS.size)
    for i, h in enumerate(fm.TRAIN_HORIZONS):
        o = _origins(grid, first_col, int(h))
        if o.rows.size < 50:
            continue
        y = grid.share[o.rows, o.cols + int(h) // 15]
        errors = []
        for w in BLEND_WEIGHTS:
            art.blend = np.full(fm.TRAIN_HORIZONS.size, w)
            errors.append(float(np.mean(np.abs(fm.predict(art, grid, prof, o).mean - y))))
        out[i] = BLEND_WEIGHTS[int(np.argmin(errors))]
    art.blend = None
    return out


def conformal_widen(hd: dict[str, np.ndarray], level: float = 0.8) -> np.ndarray:
    """Per training horizon, how much to widen (or narrow) p10–p90 to cover ``level`` of the
    held-out outcomes (conformalized quantile regression)."""
    from app.forecast import model as fm

    out = np.zeros(fm.TRAIN_HORIZONS.size)
    for i, h in enumerate(fm.TRAIN_HORIZONS):
        m = hd["h"] == h
        if m.sum() < 20:
            continue
        score = np.maximum(hd["lo"][m] - hd["y"][m], hd["y"][m] - hd["hi"][m])
        q = min(1.0, np.ceil((m.sum() + 1) * level) / m.sum())
        out[i] = float(np.quantile(score, q))
    return out


def summarize(hd: dict[str, np.ndarray], horizons: Any = REPORT_HORIZONS) -> dict[str, Any]:
    """Per horizon: n, MAE and RMSE (spaces, share) of each method, interval coverage."""
    out: dict[str, Any] = {"horizons": {}}
    for h in horizons:
        m = hd["h"] == h
        if not m.any():
            continue
        y, total = hd["y"][m], hd["total"][m]
        row: dict[str, Any] = {"n": int(m.sum())}
        for method in METHODS:
            err = hd[method][m] - y
            row[method] = {"mae_spaces": float(np.mean(np.abs(err) * total)),
                           "rmse_spaces": float(np.sqrt(np.mean((err * total) ** 2))),
                           "mae_share": float(np.mean(np.abs(err))), "rmse_share": float(np.sqrt(np.mean(err**2)))}
        row["coverage_p10_p90"] = float(np.mean((y >= hd["lo"][m] - 1e-9) & (y <= hd["hi"][m] + 1e-9)))
        out["horizons"][str(h)] = row
    return out


def table(metrics: dict[str, Any]) -> str:
    """The evaluation as a plain-text table (what ``forecast evaluate`` prints)."""
    head = (f"{'h min':>5} {'n':>7}  " + "  ".join(f"{m:>22}" for m in METHODS) + "  coverage  model/best-naive"
            "  model/corrected")
    lines = [head, f"{'':>15}" + "  ".join(f"{'MAE sp / share / RMSE sp':>22}" for _ in METHODS)]
    for h, row in metrics["horizons"].items():
        cells = [f"{row[m]['mae_spaces']:6.2f} {row[m]['mae_share']:6.3f} {row[m]['rmse_spaces']:7.2f}"
                 for m in METHODS]
        naive = min(row["persistence"]["mae_spaces"], row["last_week"]["mae_spaces"])
        ratio = row["model"]["mae_spaces"] / naive if naive else float("nan")
        vs = row["model"]["mae_spaces"] / row["corrected_profile"]["mae_spaces"] if row["corrected_profile"][
            "mae_spaces"] else float("nan")
        lines.append(f"{h:>5} {row['n']:>7}  " + "  ".join(f"{c:>22}" for c in cells)
                     + f"  {row['coverage_p10_p90']:8.1%}  {ratio:16.2f}  {vs:15.2f}")
    return "\n".join(lines)
