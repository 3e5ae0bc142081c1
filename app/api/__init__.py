"""The FastAPI layer: views only; logic lives in app.services."""
