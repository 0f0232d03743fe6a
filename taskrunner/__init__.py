"""taskrunner: a PostgreSQL-backed task runner with idempotency at its heart."""
