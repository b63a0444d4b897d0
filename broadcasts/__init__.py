"""Broadcasts ("Transmisiones"): one message to many contacts of a page, through the outbox and its policy.

An admin composes a message, picks the audience (tags, fields, campaign, last interaction), looks at a dry run (who
would receive it and why each group is skipped), then sends it now or schedules it. Each recipient becomes outbox
messages with a key of its own (a crash mid-broadcast sends nobody twice), spread at the page's broadcast rate;
receipts and outcomes come back into a report per broadcast.
"""
