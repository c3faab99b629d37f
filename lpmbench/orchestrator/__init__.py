"""Drives agents through runs: the control client, a pair run, local agents, scheduled runs."""
