"""LoRaWAN inputs: network-server envelopes (ChirpStack v4, The Things Stack v3) and the
vendor frame decoders, turned into citypark's occupancy events (see docs/real-inputs.md)."""
