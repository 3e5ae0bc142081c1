"""citypark: smart-parking matching service (settings, database, models, services, HTTP API)."""
