"""What the webhook answers to one POST, decided before anything is stored.

Pure: raw bytes, the signature header and the app secret in, a verdict out. The route in
`messenger.py` only reads the body, calls `judge_delivery`, stores `verdict.events` and answers
`verdict.status`. Standard library only (runs inside Rasa, Python 3.10).
"""

from __future__ import annotations

from dataclasses import dataclass

from meta.events import InboundEvent, SkippedItem, WebhookPayloadError, decode_webhook
from meta.feed import FeedChange
from meta.signature import is_valid_signature

# Meta's deliveries are a few KB (a batch of up to 1,000 items stays well under this). Sanic refuses
# anything larger than `SANIC_REQUEST_MAX_SIZE` before reading it; this is the webhook's own limit.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DeliveryVerdict:
    status: int  # 200 store and acknowledge; 400 malformed; 403 bad signature; 413 too large
    error: str = ""
    events: tuple[InboundEvent, ...] = ()
    skipped: tuple[SkippedItem, ...] = ()
    changes: tuple[FeedChange, ...] = ()  # `feed` changes: the comment journal's (connectors/webhook_server.py)

    @property
    def accepted(self) -> bool:
        return self.status == 200


def judge_delivery(raw: bytes, signature_header: str | None, app_secret: str) -> DeliveryVerdict:
    """Size first (cheap), then the signature (nothing unsigned is parsed), then the shape."""
    if len(raw) > MAX_BODY_BYTES:
        return DeliveryVerdict(413, "body larger than 1 MiB")
    if not is_valid_signature(raw, signature_header, app_secret):
        return DeliveryVerdict(403, "invalid signature")
    try:
        parsed = decode_webhook(raw)
    except WebhookPayloadError as exc:
        return DeliveryVerdict(400, f"not a Messenger page webhook: {exc}")
    return DeliveryVerdict(200, events=parsed.events, skipped=parsed.skipped, changes=parsed.changes)
