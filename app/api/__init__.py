"""The FastAPI layer: views only; logic lives in the domain packages (app.inventory, app.occupancy, …)."""
