-- Every message has its recipient's row in conversations: the claim locks that row
-- (lock_claimable_recipients), so a message without it could never be claimed. Enqueue has always
-- opened the row; the key makes it impossible to lose (e.g. a cleanup deleting conversations).

INSERT INTO conversations (page_id, user_id)
SELECT DISTINCT page_id, recipient_id FROM messages
ON CONFLICT (page_id, user_id) DO NOTHING;

ALTER TABLE messages
    ADD CONSTRAINT messages_conversation_fkey
    FOREIGN KEY (page_id, recipient_id) REFERENCES conversations (page_id, user_id);
