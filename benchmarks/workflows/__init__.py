"""Workflows against Celery 5 on Redis: a chord of no-op tasks, and many short chains.

    python -m benchmarks.workflows [--reps 3] [--quick] [--systems celery,taskrunner]

See benchmarks/README.md ("Workflows against Celery").
"""
