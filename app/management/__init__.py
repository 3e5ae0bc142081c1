"""City management (issue 16): hourly rollups of the event history, utilization, shared-parking
results, SFpark-style pricing recommendations and the pressure map (停车难 map)."""
