"""The patrol tour: nearest neighbour then 2-opt, an open path from the officer."""

from __future__ import annotations

import itertools
import random

from app.enforcement import patrol


def _length(start: tuple[float, float], stops: list[tuple[float, float]], order: list[int]) -> float:
    dist = patrol.distance_matrix([start, *stops])
    return patrol.path_length([0, *[k + 1 for k in order]], dist)


def test_empty_and_single_stop() -> None:
    assert patrol.plan((41.12, 123.0), []) == ([], [])
    order, legs = patrol.plan((41.12, 123.0), [(41.121, 123.0)])
    assert order == [0]
    assert 110 < legs[0] < 112  # 0.001° of latitude ≈ 111 m


def test_stops_along_a_street_are_walked_in_order() -> None:
    start = (41.12, 123.0)
    stops = [(41.12, 123.0 + d) for d in (0.004, 0.001, 0.003, 0.002)]
    order, legs = patrol.plan(start, stops)
    assert order == [1, 3, 2, 0]
    assert sum(legs) == _length(start, stops, [1, 3, 2, 0])


def test_two_opt_never_worse_than_nearest_neighbour_and_sometimes_better() -> None:
    rng = random.Random(7)
    improved = 0
    for _ in range(40):
        pts = [(41.12 + rng.uniform(-0.01, 0.01), 123.0 + rng.uniform(-0.01, 0.01)) for _ in range(9)]
        dist = patrol.distance_matrix(pts)
        greedy = patrol.nearest_neighbour(dist)
        better = patrol.two_opt(greedy, dist)
        assert sorted(better) == list(range(9))
        assert better[0] == 0
        assert patrol.path_length(better, dist) <= patrol.path_length(greedy, dist) + 1e-6
        improved += patrol.path_length(better, dist) < patrol.path_length(greedy, dist) - 1
    assert improved > 0


def test_close_to_the_optimum_on_small_sets() -> None:
    rng = random.Random(3)
    for _ in range(10):
        start = (41.12, 123.0)
        stops = [(41.12 + rng.uniform(-0.01, 0.01), 123.0 + rng.uniform(-0.01, 0.01)) for _ in range(6)]
        order, legs = patrol.plan(start, stops)
        best = min(_length(start, stops, list(p)) for p in itertools.permutations(range(6)))
        assert sum(legs) <= best * 1.15
