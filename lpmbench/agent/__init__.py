"""The agent's runtime: the asyncio control server and sessions, and one run's receiving or sending side."""
