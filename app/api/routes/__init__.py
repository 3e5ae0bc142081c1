"""One module per domain, each with a ``router``; ``app.api.main.ROUTERS`` lists them in order."""
