"""The agents' and editors' console: routes and pages (`routes`, `templates/console/`), logins and sessions
(`auth`, `store`, `users_cli`), the live-view journal (`events`), the knowledge editor and reply snippets.

Floor 4: imports any lower floor (`core`, `meta`, `knowledge_matrix`, `outbox`, `handoff`, `sandbox`); never
`connectors`, `actions` or `bot`.
"""
