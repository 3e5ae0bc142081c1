"""Availability forecasts: "will there be a space when I get there?" (issue 17)."""
