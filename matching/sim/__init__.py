"""Agent-based parking simulation: the same demand under different guidance policies.

Pure like the rest of ``matching``: no database, web or MQTT.
"""

from matching.sim.engine import SimConfig, run
from matching.sim.metrics import Metrics, measure
from matching.sim.policies import POLICIES
from matching.sim.world import DemandSpec, District, district_from_geojson, make_demand, synthetic_district

__all__ = [
    "POLICIES",
    "DemandSpec",
    "District",
    "Metrics",
    "SimConfig",
    "district_from_geojson",
    "make_demand",
    "measure",
    "run",
    "synthetic_district",
]
