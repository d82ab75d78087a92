"""Use cases: each takes its ports in the constructor and does one thing."""
