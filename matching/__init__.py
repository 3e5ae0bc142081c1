"""The matching engine: plain data in, decisions out.

No database, web or MQTT imports here (``tests/matching/test_purity.py`` checks it), so the
engine is testable and benchmarkable alone. Positions are planar metres; ``matching.geo``
projects latitude/longitude into such a frame.
"""

from matching.cost import CostModel
from matching.model import Driver, Hold, Space
from matching.reassign import reassign
from matching.solve import Assignment, assign_greedy, assign_optimal, candidate_depth

__all__ = [
    "Assignment",
    "CostModel",
    "Driver",
    "Hold",
    "Space",
    "assign_greedy",
    "assign_optimal",
    "candidate_depth",
    "reassign",
]
