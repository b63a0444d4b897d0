"""The Messenger channel inside Rasa (`credentials.yml`: `connectors.messenger.MessengerInput`): input and output,
the ingest journal, dispatch, action-server outage handling, the client of the app's internal API.

Floor 5: imports `core`, `meta`, `knowledge_matrix`, `outbox`, `handoff` (and their floors); never `actions`,
`console` or `bot`. Runs in Rasa's Python (3.10).
"""
