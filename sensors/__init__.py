"""The MQTT side of citypark: the ingest worker and writer, the sensor simulator and its payloads.

Uses ``app``'s core (settings, database, services) but never ``app.api``; nothing imports it.
"""
