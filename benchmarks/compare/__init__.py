"""Comparative benchmark: taskrunner vs PGQueuer, Procrastinate and an asyncpg baseline."""
