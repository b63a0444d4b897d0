"""Human handoff: the conversation model and state (`model`, `service`), the SQLite store's SQL (`sql/`), the
Rasa tracker API, the live-view pub/sub and the 24-hour reply window.

Floor 3: imports `core`, `meta`, `knowledge_matrix` and `outbox`; never `sandbox`, `console`, `connectors` or `bot`.
"""
