"""How long a person can still answer a paused conversation, and how: the console's window indicator.

Pure: asks the outbox's policy (`Outbox.decide`, the same decision the outbox sends by) about a
reply written by a person, now and at the end of the current way of sending, and words the answer for an
agent. Within 24 h of the customer's last message that is a normal reply; from 24 h to 7 days only with the
HUMAN_AGENT tag; after that nothing, until the customer writes again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbox.model import NewMessage, Purpose, SenderKind
from outbox.policy import ConversationWindow, Decision, SendRequest

# The outbox's policy question (`outbox.outbox.Outbox.decide`): how would this message go out at that moment?
Decide = Callable[[SendRequest, ConversationWindow, datetime], Decision]

# A person answering what the customer wrote.
_AGENT_REPLY = NewMessage(page_id="-", recipient_id="-", message={"text": "."}, sender=SenderKind.HUMAN,
                          purpose=Purpose.REPLY)


@dataclass(frozen=True)
class ReplyWindow:
    can_reply: bool
    reason_code: str
    message_es: str  # what the console shows above the reply box
    messaging_type: str | None = None
    tag: str | None = None
    ends_at: datetime | None = None  # the current way of sending ends then
    last_chance_at: datetime | None = None  # the last moment a person can write at all (None: no limit)
    time_left: timedelta | None = None  # until last_chance_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "can_reply": self.can_reply,
            "reason_code": self.reason_code,
            "message_es": self.message_es,
            "messaging_type": self.messaging_type,
            "tag": self.tag,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "last_chance_at": self.last_chance_at.isoformat() if self.last_chance_at else None,
            "seconds_left": int(self.time_left.total_seconds()) if self.time_left is not None else None,
        }


def duration_es(span: timedelta) -> str:
    """`3 días 4 h`, `5 h 12 min`, `12 min`, `menos de 1 min`: two units at most, rounded down."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return "menos de 1 min"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days} día" + ("s" if days != 1 else "")
        return text + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"


def _how(decision: Decision) -> str:
    return f"la etiqueta {decision.tag}" if decision.tag else f"una respuesta normal ({decision.messaging_type})"


def reply_window(last_user_message_at: datetime | None, now: datetime, decide: Decide) -> ReplyWindow:
    conversation = ConversationWindow(last_user_message_at=last_user_message_at)
    current = decide(_AGENT_REPLY, conversation, now)
    if not current.allowed:
        return ReplyWindow(False, current.reason_code, current.reason_es)
    last_chance = current.window_ends_at
    following: Decision | None = None
    if current.window_ends_at is not None:
        after = decide(_AGENT_REPLY, conversation, current.window_ends_at + timedelta(seconds=1))
        if after.allowed:
            following = after
            last_chance = after.window_ends_at
    time_left = last_chance - now if last_chance is not None else None
    if current.window_ends_at is None:
        message = f"Puede responder con {_how(current)}, sin límite de tiempo."
    else:
        message = f"Puede responder con {_how(current)} durante {duration_es(current.window_ends_at - now)} más"
        if following is not None and time_left is not None:
            message += f"; después, solo con {_how(following)}, hasta {duration_es(time_left)} desde ahora"
        message += "."
        if following is None:
            message += " Luego el cliente tendrá que escribir de nuevo."
    return ReplyWindow(
        can_reply=True,
        reason_code=current.reason_code,
        message_es=message,
        messaging_type=current.messaging_type,
        tag=current.tag,
        ends_at=current.window_ends_at,
        last_chance_at=last_chance,
        time_left=time_left,
    )
