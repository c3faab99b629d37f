"""Prometheus: the agent's metric state, the collector that reads it, and the /metrics endpoint."""
