"""citypark as an NGSI-LD context source for the FIWARE parking data models (docs/standards.md)."""
