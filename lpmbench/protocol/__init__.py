"""The sans-I/O control protocol between orchestrator and agent, and the contract constants both share."""
