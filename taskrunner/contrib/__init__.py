"""Thin fronts for web frameworks: `taskrunner.contrib.fastapi` (any ASGI app) and
`taskrunner.contrib.django`. Each imports only what `taskrunner` exports, and nothing of
them is imported unless the application imports it."""
