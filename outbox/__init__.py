"""Every outbound message, durable and policy-checked: the model, the policy (decisions, wording, the policy file),
the stores (in-memory, SQLite, PostgreSQL), page rate, retry, the worker (`python -m outbox worker`) and the HTTP API.

Floor 2: imports only `core` and `meta`.
"""
