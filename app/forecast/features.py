"""Weekly profiles and the model's features, computed the same way for training, serving and
backtests (a grid ending at the forecast's origin; nothing after it).

**Weekly profile** of a facility: the mean share free in each of the week's 672 slots
(weekday × 15 minutes, local time; holidays count as Sundays), shrunk towards the mean of the
same time of day on the same kind of day (Monday–Friday, Saturday, Sunday) when a slot has
few observations, and the spread (standard deviation) of each slot.

**Features** of an origin ``t`` (a grid column) and a horizon ``h``: ``h``; the last
observation; the profile at ``t`` and at ``t + h`` and their difference; the current deviation
from the profile and its mean over the last hour and the last three hours; the change over the
last hour; the slot's spread at ``t + h``; time of day, weekday and holiday flag of ``t + h``;
the facility's capacity (log); whether the last observation is missing. The target is the
deviation from the profile at ``t + h``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.forecast import calendar
from app.forecast.calendar import SLOTS_PER_DAY, WEEK_SLOTS
from app.forecast.series import Grid

SHRINK = 2.0  # pseudo-observations of the day-type mean in each slot's mean
MIN_SD = 0.01
FEATURES = ["h", "last", "p_now", "p_tgt", "p_delta", "dev0", "dev1h", "dev3h", "slope1h", "sd_tgt",
            "tod_tgt", "dow_tgt", "holiday_tgt", "log_cap", "missing"]
LOOKBACK = 12  # columns of history the features read (three hours)


@dataclass
class Profiles:
    """Per facility (rows as the grid's): mean share free and spread of each week slot."""

    mean: np.ndarray  # (F, 672), NaN where the facility has no history at all
    sd: np.ndarray  # (F, 672)
    observations: np.ndarray  # (F,) columns with data that built it


def slots(grid: Grid, country: str) -> tuple[np.ndarray, np.ndarray]:
    """Week position (float) and holiday flag of every cell of the grid (per facility zone)."""
    pos = np.empty(grid.share.shape)
    hol = np.zeros(grid.share.shape, dtype=bool)
    for zone in set(grid.inv.zones):
        rows = [i for i, z in enumerate(grid.inv.zones) if z == zone]
        pos[rows] = calendar.week_position(grid.epoch, zone)
        hol[rows] = calendar.holiday(grid.epoch, zone, country)
    return pos, hol


def effective_slot(pos: np.ndarray, hol: np.ndarray) -> np.ndarray:
    """Integer week slot, a holiday read as the Sunday slot of the same time of day."""
    slot = np.floor(pos).astype(np.int64) % WEEK_SLOTS
    return np.where(hol, 6 * SLOTS_PER_DAY + slot % SLOTS_PER_DAY, slot)


def _day_type(slot: np.ndarray) -> np.ndarray:
    day = slot // SLOTS_PER_DAY
    return np.minimum(np.maximum(day - 4, 0), 2) * SLOTS_PER_DAY + slot % SLOTS_PER_DAY


_TYPE_OF_SLOT = _day_type(np.arange(WEEK_SLOTS))


def fit_profiles(share: np.ndarray, slot: np.ndarray) -> Profiles:
    """Profiles from the grid cells (share, effective slot); NaN cells are ignored."""
    f_count = share.shape[0]
    valid = ~np.isnan(share)
    rows = np.broadcast_to(np.arange(f_count)[:, None], share.shape)[valid]
    y, s = share[valid], slot[valid]
    sums = _bincount(rows * WEEK_SLOTS + s, y, f_count * WEEK_SLOTS).reshape(f_count, WEEK_SLOTS)
    sq = _bincount(rows * WEEK_SLOTS + s, y * y, f_count * WEEK_SLOTS).reshape(f_count, WEEK_SLOTS)
    cnt = _bincount(rows * WEEK_SLOTS + s, None, f_count * WEEK_SLOTS).reshape(f_count, WEEK_SLOTS)
    mean, sd = _shrunk(sums, sq, cnt)
    return Profiles(mean, sd, valid.sum(axis=1))


def _bincount(index: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    return np.bincount(index, weights=weights, minlength=size).astype(np.float64)


def _shrunk(sums: np.ndarray, sq: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slot means shrunk to day-type means, which fall back to the facility's overall mean."""
    types = np.zeros((sums.shape[0], 3 * SLOTS_PER_DAY))
    tsum, tsq, tcnt = (np.zeros_like(types) for _ in range(3))
    for arr, out in ((sums, tsum), (sq, tsq), (cnt, tcnt)):
        np.add.at(out, (slice(None), _TYPE_OF_SLOT), arr)  # type: ignore[arg-type]
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = sums.sum(axis=1, keepdims=True) / cnt.sum(axis=1, keepdims=True)
        overall_sq = sq.sum(axis=1, keepdims=True) / cnt.sum(axis=1, keepdims=True)
        tmean = np.where(tcnt > 0, tsum / tcnt, overall)
        tsq_mean = np.where(tcnt > 0, tsq / tcnt, overall_sq)
        prior, prior_sq = tmean[:, _TYPE_OF_SLOT], tsq_mean[:, _TYPE_OF_SLOT]
        mean = (sums + SHRINK * prior) / (cnt + SHRINK)
        second = (sq + SHRINK * prior_sq) / (cnt + SHRINK)
    sd = np.sqrt(np.maximum(second - mean * mean, MIN_SD**2))
    return mean, sd


def lookup(profile: np.ndarray, rows: np.ndarray, pos: np.ndarray, hol: np.ndarray) -> np.ndarray:
    """Profile values at fractional week positions (linear between slots; holidays as Sundays)."""
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    a = profile[rows, effective_slot(lo.astype(np.float64), hol)]
    b = profile[rows, effective_slot((lo + 1).astype(np.float64), hol)]
    return a * (1 - frac) + b * frac


@dataclass
class Origins:
    """Which (facility row, grid column, horizon in minutes) to build features for."""

    rows: np.ndarray
    cols: np.ndarray
    h_min: np.ndarray


def featurize(grid: Grid, prof: Profiles, o: Origins, *, country: str,
              loo: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix and the profile at each target (the base the model corrects).

    ``loo`` (facilities × columns), when given (training), holds each cell's leave-one-out
    profile value: observations and targets are compared with a profile that did not see them,
    as at serving time. Targets must then lie on grid columns.
    """
    past_profile = loo
    pos, hol = slots(grid, country)
    y = grid.share
    base = past_profile if past_profile is not None else prof.mean[np.arange(y.shape[0])[:, None],
                                                                   effective_slot(pos, hol)]
    dev = y - base
    last = y[o.rows, o.cols]
    p_now = base[o.rows, o.cols]
    t_epoch = grid.epoch[o.cols] + o.h_min * 60.0
    t_pos, t_hol = _target_calendar(grid, o.rows, t_epoch, country)
    if loo is not None:
        p_tgt = loo[o.rows, o.cols + (o.h_min // 15).astype(np.int64)]
    else:
        p_tgt = lookup(prof.mean, o.rows, t_pos, t_hol)
    sd_tgt = lookup(prof.sd, o.rows, t_pos, t_hol)
    missing = np.isnan(last)
    dev0 = np.where(missing, 0.0, last - p_now)
    cols = [o.h_min, np.where(missing, p_now, last), p_now, p_tgt, p_tgt - p_now, dev0,
            _window_mean(dev, o, 4), _window_mean(dev, o, LOOKBACK), _slope(y, o, 4), sd_tgt,
            (t_pos % SLOTS_PER_DAY) / 4.0, np.floor(t_pos / SLOTS_PER_DAY), t_hol.astype(np.float64),
            np.log1p(grid.inv.total[o.rows]), missing.astype(np.float64)]
    return np.column_stack(cols).astype(np.float32), p_tgt


def _target_calendar(grid: Grid, rows: np.ndarray, epoch: np.ndarray, country: str) -> tuple[np.ndarray, np.ndarray]:
    pos = np.empty(epoch.shape)
    hol = np.zeros(epoch.shape, dtype=bool)
    zones = np.array(grid.inv.zones, dtype=object)[rows] if rows.size else np.array([], dtype=object)
    for zone in set(zones.tolist()):
        m = zones == zone
        pos[m] = calendar.week_position(epoch[m], zone)
        hol[m] = calendar.holiday(epoch[m], zone, country)
    return pos, hol


def _window_mean(dev: np.ndarray, o: Origins, width: int) -> np.ndarray:
    """Mean deviation over the ``width`` columns ending at each origin (NaN-aware, 0 if none)."""
    total = np.zeros(o.rows.shape)
    count = np.zeros(o.rows.shape)
    for j in range(width):
        c = o.cols - j
        ok = c >= 0
        v = np.where(ok, dev[o.rows, np.maximum(c, 0)], np.nan)
        good = ~np.isnan(v)
        total += np.where(good, v, 0.0)
        count += good
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _slope(y: np.ndarray, o: Origins, back: int) -> np.ndarray:
    prev = np.where(o.cols >= back, y[o.rows, np.maximum(o.cols - back, 0)], np.nan)
    diff = y[o.rows, o.cols] - prev
    return np.where(np.isnan(diff), 0.0, diff)


def leave_one_out(share: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Each cell's profile value computed without the cell itself (honest training features:
    the profile a model meets at serving time has never seen the value it is compared with)."""
    f_count = share.shape[0]
    valid = ~np.isnan(share)
    rows = np.broadcast_to(np.arange(f_count)[:, None], share.shape)
    idx = (rows * WEEK_SLOTS + slot)
    y = np.where(valid, share, 0.0)
    size = f_count * WEEK_SLOTS
    sums = np.bincount(idx[valid], weights=y[valid], minlength=size)
    cnt = np.bincount(idx[valid], minlength=size).astype(np.float64)
    tslot = rows * 3 * SLOTS_PER_DAY + _TYPE_OF_SLOT[slot]
    tsum = np.bincount(tslot[valid], weights=y[valid], minlength=f_count * 3 * SLOTS_PER_DAY)
    tcnt = np.bincount(tslot[valid], minlength=f_count * 3 * SLOTS_PER_DAY).astype(np.float64)
    own = valid.astype(np.float64)
    s_loo, c_loo = sums[idx] - y, cnt[idx] - own
    ts_loo, tc_loo = tsum[tslot] - y, tcnt[tslot] - own
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = (y.sum(axis=1, keepdims=True) - y) / (valid.sum(axis=1, keepdims=True) - own)
        prior = np.where(tc_loo > 0, ts_loo / np.maximum(tc_loo, 1), overall)
        return (s_loo + SHRINK * prior) / (c_loo + SHRINK)
