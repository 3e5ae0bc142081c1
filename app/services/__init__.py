"""Domain services: small module-level functions; transactions belong to the caller."""
