"""History import: a city's past facility counts and sensor events, through live validation."""
