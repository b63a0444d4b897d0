"""Messenger Send API limits, as Meta documents them.

One place for the numbers, so the builder of outgoing messages (`outgoing.py`) and the
validator that plays Meta's part (`validate.py`) can never disagree. Lengths are counted in
characters (Python `len`), the way the rest of the connector counts them.

Imported inside the Rasa process (Python 3.10): standard library only.
"""

from __future__ import annotations

from typing import Any

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
TEMPLATE_TYPES = frozenset({"button", "generic", "media", "customer_feedback"})
BUTTON_TYPES = frozenset({"web_url", "postback", "phone_number"})
QUICK_REPLY_CONTENT_TYPES = frozenset({"text", "user_phone_number", "user_email"})
MEDIA_TEMPLATE_MEDIA_TYPES = frozenset({"image", "video"})
# Meta limits Send API calls per page more tightly for messages with audio or video (outbox/policy.yml send_rates).
AUDIO_VIDEO_TYPES = frozenset({"audio", "video"})


def carries_audio_or_video(message: Any) -> bool:
    """Pure: a Send API `message` with an audio or video attachment, or a media template showing a video (Meta's
    slower rate applies). Anything else, malformed shapes included, is not."""
    if not isinstance(message, dict):
        return False
    attachments = message.get("attachments")
    found = [*(attachments if isinstance(attachments, list) else []), message.get("attachment")]
    for attachment in found:
        if not isinstance(attachment, dict):
            continue
        if attachment.get("type") in AUDIO_VIDEO_TYPES:
            return True
        payload = attachment.get("payload")
        elements = payload.get("elements") if isinstance(payload, dict) else None
        if attachment.get("type") == "template" and isinstance(elements, list) and any(
            isinstance(element, dict) and element.get("media_type") in AUDIO_VIDEO_TYPES for element in elements
        ):
            return True
    return False

# Customer feedback template (Meta: "Customer Feedback Template", in development): a title, a subtitle and a button in
# the thread; one screen with one question (csat, nps, ces or free_form), an optional free-form follow-up; a privacy
# policy link; the form expires after 1 to 7 days. No URLs in the texts. The CUSTOMER_FEEDBACK tag goes with this
# template only.
FEEDBACK_TITLE_MAX_CHARS = 65
FEEDBACK_SUBTITLE_MAX_CHARS = 80
FEEDBACK_BUTTON_TITLE_MAX_CHARS = 20
FEEDBACK_QUESTION_ID_MAX_CHARS = 80
FEEDBACK_QUESTION_TITLE_MIN_CHARS = 5
FEEDBACK_QUESTION_TITLE_MAX_CHARS = 85
FEEDBACK_PLACEHOLDER_MAX_CHARS = 65
FEEDBACK_EXPIRES_DAYS = range(1, 8)
FEEDBACK_SCREENS_MAX = 1
FEEDBACK_QUESTIONS_MAX = 1
FEEDBACK_QUESTION_TYPES = frozenset({"csat", "nps", "ces", "free_form"})
FEEDBACK_SCORE_OPTIONS = {
    "csat": frozenset({"one_to_five", "five_stars", "five_emojis"}),
    "nps": frozenset({"zero_to_ten"}),
    "ces": frozenset({"one_to_seven"}),
}
FEEDBACK_SCORE_LABELS = frozenset({"neg_pos", "hard_easy", "dis_sat", "unlike_like", "poor_great", "none"})
FEEDBACK_TEMPLATE_KEYS = frozenset({"template_type", "title", "subtitle", "button_title", "feedback_screens",
                                    "business_privacy", "expires_in_days"})
FEEDBACK_QUESTION_KEYS = frozenset({"id", "type", "title", "score_label", "score_option", "follow_up"})
