"""The Graph API sandbox (`graph`: a local stand-in for Meta's Send API) and the simulated Messenger user
(`simulate`: signed webhooks, the sandbox chat page in `templates/`).

Floor 3: imports `core`, `meta`, `knowledge_matrix` and `outbox`; never `handoff`, `console`, `connectors` or `bot`.
"""
