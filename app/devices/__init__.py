"""Devices behind the sensors: LoRaWAN identities (DevEUI, decoder family), their health
(battery, temperature, radio) and the resets they report."""
