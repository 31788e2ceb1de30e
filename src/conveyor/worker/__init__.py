"""The worker: fetch, run, acknowledge; with heartbeat, recovery and supervision."""
