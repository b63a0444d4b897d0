"""Messenger Send API limits, as Meta documents them.

One place for the numbers, so the builder of outgoing messages (`outgoing.py`) and the
validator that plays Meta's part (`validate.py`) can never disagree. Lengths are counted in
characters (Python `len`), the way the rest of the connector counts them.

Imported inside the Rasa process (Python 3.10): standard library only.
"""

from __future__ import annotations

# Text messages.
TEXT_MAX_CHARS = 2000

# Quick replies (at most 13 per message).
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX_CHARS = 20

# Postback and quick reply payloads share one limit.
PAYLOAD_MAX_CHARS = 1000

# Button template: text up to 640 characters, one to three buttons.
BUTTON_TEMPLATE_TEXT_MAX_CHARS = 640
BUTTONS_MIN = 1
BUTTONS_MAX = 3
BUTTON_TITLE_MAX_CHARS = 20

# Generic template: up to 10 elements, each with up to 3 buttons.
GENERIC_ELEMENTS_MAX = 10
ELEMENT_TITLE_MAX_CHARS = 80
ELEMENT_SUBTITLE_MAX_CHARS = 80
ELEMENT_BUTTONS_MAX = 3

# Media template: exactly one element (an image or a video), up to 3 buttons.
MEDIA_TEMPLATE_ELEMENTS_MAX = 1

MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY"})

# The tags Meta has documented. Whether a tag may still be used at a given date is not
# decided here: the outbox policy module owns that.
MESSAGE_TAGS = frozenset(
    {
        "HUMAN_AGENT",
        "CONFIRMED_EVENT_UPDATE",
        "POST_PURCHASE_UPDATE",
        "ACCOUNT_UPDATE",
        "CUSTOMER_FEEDBACK",
    }
)

SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen"})

# Exactly one of these identifies the recipient of a Send API request.
RECIPIENT_KEYS = ("id", "user_ref", "post_id", "comment_id", "notification_messages_token")

MEDIA_ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "file"})
# An uploaded asset (Attachment Upload API or a Send API upload): 25 MB; an image Meta fetches from a URL: 8 MB.
ATTACHMENT_MAX_BYTES = 25 * 1024 * 1024
ATTACHMENT_URL_IMAGE_MAX_BYTES = 8 * 1024 * 1024
ATTACHMENT_TYPES = MEDIA_ATTACHMENT_TYPES | {"template"}
TEMPLATE_TYPES = frozenset({"button", "generic", "media"})
BUTTON_TYPES = frozenset({"web_url", "postback", "phone_number"})
QUICK_REPLY_CONTENT_TYPES = frozenset({"text", "user_phone_number", "user_email"})
MEDIA_TEMPLATE_MEDIA_TYPES = frozenset({"image", "video"})
