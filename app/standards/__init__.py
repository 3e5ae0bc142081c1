"""The city's standards: citypark as an NGSI-LD context source (ETSI GS CIM 009, FIWARE Smart
Data Models parking types) with subscriptions, and as a DATEX II v3.4 parking publisher.

``ngsi_ld/`` builds entities from live state, answers queries and keeps subscriptions (the
notifier runs as its own process, ``citypark notify``); ``datex2/`` writes the parking table
and status publications. See docs/standards.md.
"""
