"""The ground floor: the vocabulary every room shares — settings (`Settings`, read once from the environment),
business hours, the loopback rule for hosts, the start-up exposure checks and the SQLite file helper.

Imports nothing of ours: standard library (and the settings' own parsing) only.
"""
