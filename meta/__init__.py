"""Meta's wire, without Rasa: the Graph API client and its error catalogue, Send API limits, webhook signatures,
webhook events, outgoing message building, request validation and delivery receipts.

Floor 1: imports only `core`.
"""
