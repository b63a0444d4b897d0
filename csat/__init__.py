"""Customer satisfaction: after an agent closes a conversation the person is asked for a rating (Meta's customer
feedback template, or quick replies) through the outbox; the answer is stored per conversation and agent."""
