"""Scheduled syncs for `mirror service`: APScheduler jobs, database leases and whitelist reloads."""
