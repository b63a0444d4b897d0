"""Comments on the page's posts become conversations ("Respuestas privadas"): the feed comments journal, the reply
rules editors manage, and the processor that answers a comment with one private reply (and optionally a public one)
through the outbox."""
