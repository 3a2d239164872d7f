"""Configuration: the Settings (one resolution of every setting) and the SLA spec."""
