"""Reports (issue 14): what the bot and the team did over a period of local days, read from counters kept at write
time (the outbox's hours, the answer journal's hours, handoff episodes, ratings), as tables, charts and CSV files."""
