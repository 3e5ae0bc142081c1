"""The MQTT side of citypark: codecs, the ingest worker and the sensor simulator.

Uses ``app``'s core (settings, database, services) but never ``app.api``; nothing imports it.
"""
