"""The root of the errors a request can end in: a reason code for programs, words for people, never an HTTP status.

Each package's errors derive from `DomainError` (the outbox's, handoff's, console's, knowledge editor's). The app
turns them into HTTP answers in one place, `bot/errors.py`, reading the one table below from reason code to HTTP
status; a package never chooses a status. The table is plain strings, so it sits on the ground floor where every
package (the console's login page too) can read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any


class DomainError(Exception):
    """`reason_code` (a class attribute, or set per instance) is the machine-readable reason; `str(self)` the message.

    `message_es`: the Spanish wording the console shows (empty: the message). `details()`: extra fields of the error
    body. `retry_after`: when to try again (sent as Retry-After).
    """

    reason_code: str = "domain_error"
    message_es: str = ""
    retry_after: timedelta | None = None

    def details(self) -> dict[str, Any]:
        return {}


class FieldInvalid(DomainError, ValueError):
    """A value someone typed that cannot be saved: `field` names it (`reply.message.text`, `fields.ciudad`), and
    `message_es` says why, in Spanish, to the person who typed it. Each package's own class (`RuleInvalid`,
    `ContactInvalid`, `LinkInvalid`) gives its reason code and its place under the package's root error."""

    def __init__(self, field: str, message_es: str) -> None:
        super().__init__(f"{field}: {message_es}")
        self.field = field
        self.message_es = message_es

    def details(self) -> dict[str, Any]:
        return {"field": self.field}


# Reason code -> HTTP status; every reason code a DomainError can carry has a row (tests/unit/bot/test_errors.py).
HTTP_STATUS: Mapping[str, int] = {
    # Any package's catch-all roots: a bug or an outage, never the caller's fault.
    "domain_error": 500,
    "outbox_error": 500,
    "policy_file_invalid": 500,
    "invalid_store_url": 500,
    "handoff_error": 500,
    "console_error": 500,
    "auth_error": 400,
    "knowledge_error": 422,
    "rule_error": 500,
    # Who is asking.
    "service_token_required": 401,
    "not_authenticated": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "csrf_rejected": 403,
    "human_sender_required": 403,
    "too_many_attempts": 429,
    "login_busy": 503,
    # What does not exist.
    "not_found": 404,
    "conversation_not_found": 404,
    "message_not_found": 404,
    "draft_not_found": 404,
    "snippet_not_found": 404,
    "rule_not_found": 404,
    "link_not_found": 404,
    # A state that forbids it now.
    "idempotency_key_reused": 409,
    "invalid_transition": 409,
    "draft_has_errors": 409,
    "stale_draft": 409,  # the knowledge editor: the live matrix changed since the draft was made (`can_confirm`)
    "nothing_to_roll_back": 409,
    "nothing_published": 404,  # the knowledge editor: no live matrix to download yet
    "ref_in_use": 409,
    "knowledge_busy": 429,
    "paraphrases_off": 409,  # knowledge_matrix/paraphrases.py: no LLM key, nothing is ever sent
    "paraphrase_job_running": 409,  # one paraphrase job at a time
    "file_too_large": 413,
    "unsupported_file": 415,  # console/attachments.py: a file type Messenger does not take (read from its bytes)
    "empty_file": 422,
    "attachment_invalid": 422,
    "attachment_not_found": 404,
    # A part of the app that did not answer.
    "rasa_unavailable": 502,
    "handoff_unavailable": 503,
    "outbox_unavailable": 503,
    "knowledge_unavailable": 503,
    "links_unavailable": 503,
    # The request itself.
    "invalid_request": 422,
    "invalid_user": 422,
    "invalid_message": 422,
    "invalid_date": 422,
    "date_in_past": 422,
    "invalid_status": 422,
    "invalid_idempotency_key": 422,
    "batch_too_large": 422,  # outbox: more than MAX_BATCH messages or ids in one call
    "invalid_receipt": 422,  # outbox: a receipt that is neither 'delivery' nor 'read'
    "invalid_period": 422,  # outbox: a report period with naive times or that ends before it starts
    "invalid_offset": 422,  # outbox: a UTC offset of a day or more for message_days
    "invalid_key_prefix": 422,  # outbox: a bulk cancel's idempotency-key prefix that is empty or not a prefix
    "invalid_snippet": 422,
    "rule_invalid": 422,
    "link_invalid": 422,
    "invalid_limit": 422,
    "invalid_outcome": 422,
    "invalid_max_attempts": 422,
    "missing_recipient": 422,
    "invalid_recipient": 422,
    "unknown_page": 422,
    "unknown_agent": 422,
    "empty_text": 422,
    "empty_reply": 422,
    "reply_too_long": 422,
    "empty_note": 422,
    # The outbox policy's refusals (outbox.policy, worded in outbox.wording).
    "not_allowed": 422,
    "never_wrote": 422,
    "outside_window": 422,
    "human_agent_window_expired": 422,
    "human_agent_bot_sender": 422,
    "tag_retired": 422,
    "promotional_with_tag": 422,
    "promotional_outside_window": 422,
    "unknown_tag": 422,
    "tag_not_in_policy": 422,
    "utility_not_enabled": 422,
    "sender_not_allowed": 422,
    "purpose_not_allowed": 422,
    "content_not_allowed": 422,
    "rule_not_yet_valid": 422,
    "rule_expired": 422,
    # The page's Messenger profile (page_profile): the edit, then Facebook's answer to "Aplicar en Facebook".
    "page_profile_error": 500,
    "invalid_profile": 422,
    "nothing_to_apply": 409,
    "facebook_rate_limited": 429,
    "facebook_refused": 502,
    "page_token_invalid": 502,
    "facebook_unavailable": 503,
    "private_reply_already_sent": 409,  # the outbox store: one private reply per comment
    # Contacts (contacts/, console/contacts.py).
    "contacts_error": 500,
    "contact_invalid": 422,
    "contact_not_found": 404,
    "contacts_unavailable": 503,
    "contacts_csv_invalid": 422,  # a CSV that cannot be read as a whole (contacts.csv_io.CsvRefused)
    "contacts_import_invalid": 422,  # a CSV with errors by row: nothing imported (console/contacts_csv.py)
    "inbox_filter_invalid": 422,  # the inbox's state filter (console/inbox.py)
    # Broadcasts (broadcasts/, console/broadcasts.py).
    "broadcasts_error": 500,
    "broadcast_invalid": 422,
    "broadcast_not_found": 404,
    "broadcast_state_error": 409,
    "broadcast_not_editable": 409,  # only a draft is edited, deleted or sent
    "broadcast_not_cancellable": 409,  # only a scheduled or sending one is cancelled
    "broadcast_not_retryable": 409,  # only a sent or sending one has failed recipients to retry
    "broadcasts_unavailable": 503,
    # Reports (reports/, console/reports.py).
    "reports_error": 500,
    "report_invalid": 400,  # `desde`, `hasta` or `pagina` that cannot be reported on (the field named)
    "reports_unavailable": 503,
}


def status_of(error: DomainError) -> int:
    """The HTTP status of an error's reason code (500 for a code without a row: a bug the unit test catches)."""
    return HTTP_STATUS.get(error.reason_code, 500)
