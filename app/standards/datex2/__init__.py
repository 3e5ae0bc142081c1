"""DATEX II v3.4 parking publications (``prk:ParkingTablePublication``, ``prk:ParkingStatusPublication``)."""
