"""Shared state on Redis: budgets, rate windows, keys, exact-cache entries and breakers seen
by every process and replica that points at the same Redis (docs/deploy.md, "Shared state").

Without a Redis URL nothing here is imported on the request path: the gateway keeps its
state in memory, as a single process (docs/architecture.md, "State and restarts").
"""
