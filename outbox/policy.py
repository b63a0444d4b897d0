"""Which way of sending Meta allows for a message, decided by a pure function over a policy file.

`decide(message, conversation, now, policy)` returns a `Decision`: how to send (messaging_type, tag) or why not,
with a machine reason code and a sentence an agent understands, in Spanish and English. The rules themselves are
data (`outbox/policy.yml`, overridable per deployment): when Meta moves them again, nobody edits this module.

Standard library + PyYAML, Python 3.10: the Rasa process imports it too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import yaml

from connectors.limits import MESSAGE_TAGS, MESSAGING_TYPES
from outbox.model import OutboxError, OutboxInputError, Purpose, SenderKind, utc

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.yml")
POLICY_FILE_ENV = "OUTBOX_POLICY_FILE"
RETIRED_TAGS_UNTIL_ENV = "OUTBOX_RETIRED_TAGS_UNTIL"

# Meta retired these three tags in 2026 (2026-02-10 or 2026-04-27 depending on the report; see policy.yml).
# OUTBOX_RETIRED_TAGS_UNTIL moves their `valid_until`; everything else about them stays in the policy file.
RETIRED_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})
HUMAN_AGENT_TAG = "HUMAN_AGENT"

# connectors/limits.py does not know UTILITY yet (nor does the sandbox validator); the policy does.
UTILITY = "UTILITY"
SEND_MESSAGING_TYPES = MESSAGING_TYPES | {UTILITY}

# Webhook event kinds (connectors.events.EventKind values) that are the user's own doing and reopen the standard
# window on that page: messages (quick replies arrive as messages), postbacks (Get Started, buttons, menu),
# referrals into an existing thread (m.me links, ads) and reactions. Never: echoes (our bot, an agent in the Page
# inbox), delivery and read receipts, handover, comments (those allow one private reply, not a window).
USER_EVENT_KINDS = frozenset({"message", "quick_reply", "postback", "referral", "reaction"})

# Reason codes. Refusals are answered with a 4xx carrying the code (`Decision.raise_if_refused`).
ALLOWED = "allowed"
TAG_NOT_NEEDED = "tag_not_needed"  # allowed: the requested tag was dropped, the standard window is open
NEVER_WROTE = "never_wrote"
OUTSIDE_WINDOW = "outside_window"
HUMAN_AGENT_WINDOW_EXPIRED = "human_agent_window_expired"
HUMAN_AGENT_BOT_SENDER = "human_agent_bot_sender"
TAG_RETIRED = "tag_retired"
PROMOTIONAL_WITH_TAG = "promotional_with_tag"
PROMOTIONAL_OUTSIDE_WINDOW = "promotional_outside_window"
UNKNOWN_TAG = "unknown_tag"
TAG_NOT_IN_POLICY = "tag_not_in_policy"
UTILITY_NOT_ENABLED = "utility_not_enabled"
SENDER_NOT_ALLOWED = "sender_not_allowed"
PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
CONTENT_NOT_ALLOWED = "content_not_allowed"
RULE_NOT_YET_VALID = "rule_not_yet_valid"
RULE_EXPIRED = "rule_expired"
REFUSAL_CODES = frozenset(
    {
        NEVER_WROTE,
        OUTSIDE_WINDOW,
        HUMAN_AGENT_WINDOW_EXPIRED,
        HUMAN_AGENT_BOT_SENDER,
        TAG_RETIRED,
        PROMOTIONAL_WITH_TAG,
        PROMOTIONAL_OUTSIDE_WINDOW,
        UNKNOWN_TAG,
        TAG_NOT_IN_POLICY,
        UTILITY_NOT_ENABLED,
        SENDER_NOT_ALLOWED,
        PURPOSE_NOT_ALLOWED,
        CONTENT_NOT_ALLOWED,
        RULE_NOT_YET_VALID,
        RULE_EXPIRED,
    }
)


class PolicyFileError(OutboxError):
    """The policy file cannot be used: unreadable, malformed, or a rule Meta would not accept."""


class ContentKind(str, Enum):
    """The shape of a Send API `message`, as far as the policy cares."""

    STANDARD = "standard"  # text, attachments, button/generic/media templates
    UTILITY_TEMPLATE = "utility_template"  # message.template {name, language, components}
    CUSTOMER_FEEDBACK_TEMPLATE = "customer_feedback_template"  # attachment template_type customer_feedback


DEFAULT_CONTENT = frozenset({ContentKind.STANDARD, ContentKind.CUSTOMER_FEEDBACK_TEMPLATE})


def content_kind(message: Mapping[str, Any] | None) -> ContentKind:
    """A utility message carries `message.template`; the feedback survey is an attachment template."""
    if not isinstance(message, Mapping):
        return ContentKind.STANDARD
    if isinstance(message.get("template"), Mapping):
        return ContentKind.UTILITY_TEMPLATE
    attachment = message.get("attachment")
    if isinstance(attachment, Mapping) and attachment.get("type") == "template":
        payload = attachment.get("payload")
        if isinstance(payload, Mapping) and payload.get("template_type") == "customer_feedback":
            return ContentKind.CUSTOMER_FEEDBACK_TEMPLATE
    return ContentKind.STANDARD


@dataclass(frozen=True)
class SendingRule:
    """One way of sending: who may use it, when (measured from the user's last own message), for what."""

    name: str
    messaging_type: str
    tag: str | None
    senders: frozenset[SenderKind]
    purposes: frozenset[Purpose]
    window_from: timedelta
    window_to: timedelta | None  # None: no upper limit
    promotional_allowed: bool
    valid_from: datetime | None = None  # included
    valid_until: datetime | None = None  # excluded: the first instant the rule no longer applies
    requires_page_opt_in: bool = False
    content: frozenset[ContentKind] = DEFAULT_CONTENT
    only_when_requested: bool = False  # never chosen unless the caller asks for its tag

    def __post_init__(self) -> None:
        """Rules Meta would refuse (or that would break the invariants) cannot even be built."""
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a rule needs a name")
        if self.messaging_type not in SEND_MESSAGING_TYPES:
            raise ValueError(
                f"messaging_type {self.messaging_type!r} is not one of {', '.join(sorted(SEND_MESSAGING_TYPES))}"
            )
        if (self.messaging_type == "MESSAGE_TAG") != (self.tag is not None):
            raise ValueError("a tag goes with messaging_type MESSAGE_TAG, and MESSAGE_TAG needs a tag")
        if self.tag is not None and self.tag not in MESSAGE_TAGS:
            raise ValueError(f"unknown tag {self.tag!r}; Meta's tags: {', '.join(sorted(MESSAGE_TAGS))}")
        if self.tag is not None and self.promotional_allowed:
            raise ValueError("Meta forbids promotional content with message tags: promotional_allowed must be false")
        if self.messaging_type == UTILITY and self.promotional_allowed:
            raise ValueError("utility messages must not contain marketing: promotional_allowed must be false")
        if self.tag == HUMAN_AGENT_TAG and self.senders != {SenderKind.HUMAN}:
            raise ValueError("HUMAN_AGENT is for people only: senders must be [human]")
        if self.only_when_requested and self.tag is None:
            raise ValueError("only_when_requested needs a tag (it is how the caller requests the rule)")
        if not self.senders or not self.purposes or not self.content:
            raise ValueError("senders, purposes and content must not be empty")
        for name in ("senders", "purposes", "content"):
            if not isinstance(getattr(self, name), frozenset):
                raise ValueError(f"{name} must be a frozenset")
        if self.window_from < timedelta(0):
            raise ValueError("window_from must not be negative")
        if self.window_to is not None and self.window_from > self.window_to:
            raise ValueError(f"window_from ({self.window_from}) is after window_to ({self.window_to})")
        for name in ("valid_from", "valid_until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _aware(value, name))
        if self.valid_from is not None and self.valid_until is not None and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")

    def ends_at(self, last_user_message_at: datetime) -> datetime | None:
        """When a send under this rule stops being possible: the window's end or the retirement, whichever first."""
        ends = [self.valid_until] if self.valid_until is not None else []
        if self.window_to is not None:
            ends.append(last_user_message_at + self.window_to)
        return min(ends) if ends else None


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[SendingRule, ...]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("a policy needs at least one rule")
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")

    def rule(self, name: str) -> SendingRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def rules_for_tag(self, tag: str) -> tuple[SendingRule, ...]:
        return tuple(rule for rule in self.rules if rule.tag == tag)


@dataclass(frozen=True)
class ConversationWindow:
    """What the policy needs to know about one user on one page."""

    last_user_message_at: datetime | None  # only the user's own messages, on this page (private reply: the comment)
    page_utility_opt_in: bool = False

    def __post_init__(self) -> None:
        if self.last_user_message_at is not None:
            object.__setattr__(self, "last_user_message_at", _aware(self.last_user_message_at, "last_user_message_at"))


class SendRequest(Protocol):
    """What `decide` reads from a message; `NewMessage` and `OutboxMessage` both fit."""

    @property
    def sender(self) -> SenderKind: ...

    @property
    def purpose(self) -> Purpose: ...

    @property
    def tag(self) -> str | None: ...

    @property
    def promotional(self) -> bool: ...

    @property
    def message(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Decision:
    """How to send (messaging_type, tag, the rule) or why not; both carry a reason for agents in es and en."""

    allowed: bool
    reason_code: str
    reason_es: str
    reason_en: str
    messaging_type: str | None = None
    tag: str | None = None
    rule: str | None = None
    window_ends_at: datetime | None = None  # allowed: the send is possible until then (None: no limit)
    alternative: str | None = None  # refused: a rule that would work instead (e.g. HUMAN_AGENT for a person)
    alternative_until: datetime | None = None

    def send_fields(self) -> dict[str, str]:
        """The Send API fields this decision stands for."""
        if not self.allowed or self.messaging_type is None:
            raise OutboxInputError(self.reason_code, self.reason_en)
        fields = {"messaging_type": self.messaging_type}
        if self.tag is not None:
            fields["tag"] = self.tag
        return fields

    def as_error(self, language: str = "es") -> OutboxInputError:
        return OutboxInputError(self.reason_code, self.reason_es if language == "es" else self.reason_en)

    def raise_if_refused(self, language: str = "es") -> Decision:
        if not self.allowed:
            raise self.as_error(language)
        return self


class TimelineEvent(NamedTuple):
    kind: str  # a connectors.events.EventKind value, or bot_message/agent_message for what we sent
    page_id: str
    at: datetime


def last_user_message_at(events: Iterable[tuple[Any, str, datetime]], page_id: str) -> datetime | None:
    """The latest time the user did something that reopens the window on this page (`USER_EVENT_KINDS`)."""
    latest: datetime | None = None
    for kind, event_page_id, at in events:
        name = kind.value if isinstance(kind, Enum) else str(kind)
        if event_page_id != page_id or name not in USER_EVENT_KINDS:
            continue
        at = _aware(at, "event time")
        if latest is None or at > latest:
            latest = at
    return latest


# --- deciding ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    sender: SenderKind
    purpose: Purpose
    tag: str | None
    promotional: bool
    content: ContentKind


@dataclass(frozen=True)
class _Situation:
    now: datetime
    last: datetime
    elapsed: timedelta
    opted_in: bool


# The checks in the order they are tried; a refusal reports the rule that got furthest. What is being sent comes
# first: a utility template is explained by the UTILITY rule, never by RESPONSE.
_CHECKS = ("content", "sender", "purpose", "promotional", "not_yet_valid", "retired", "opt_in", "too_early", "too_late")


def _failed_check(rule: SendingRule, request: _Request, situation: _Situation) -> str | None:
    if request.content not in rule.content:
        return "content"
    if request.sender not in rule.senders:
        return "sender"
    if request.purpose not in rule.purposes:
        return "purpose"
    if request.promotional and not rule.promotional_allowed:
        return "promotional"
    if rule.valid_from is not None and situation.now < rule.valid_from:
        return "not_yet_valid"
    if rule.valid_until is not None and situation.now >= rule.valid_until:
        return "retired"
    if rule.requires_page_opt_in and not situation.opted_in:
        return "opt_in"
    if situation.elapsed < rule.window_from:
        return "too_early"
    if rule.window_to is not None and situation.elapsed > rule.window_to:
        return "too_late"
    return None


def _first_fitting(rules: Iterable[SendingRule], request: _Request, situation: _Situation) -> SendingRule | None:
    for rule in rules:
        if _failed_check(rule, request, situation) is None:
            return rule
    return None


def decide(message: SendRequest, conversation: ConversationWindow, now: datetime, policy: Policy) -> Decision:
    """How to send `message` now, or why not. Pure: the same inputs give the same decision."""
    now = _aware(now, "now")
    request = _Request(
        sender=SenderKind(message.sender),
        purpose=Purpose(message.purpose),
        tag=message.tag,
        promotional=bool(message.promotional),
        content=content_kind(getattr(message, "message", None)),
    )
    words = _Words(now)
    if request.tag is not None:
        if request.tag not in MESSAGE_TAGS:
            return words.refuse(UNKNOWN_TAG, tag=request.tag)
        if request.promotional:
            return words.refuse(PROMOTIONAL_WITH_TAG, tag=request.tag)
        if not policy.rules_for_tag(request.tag):
            return words.refuse(TAG_NOT_IN_POLICY, tag=request.tag)
    last = conversation.last_user_message_at
    if last is None:
        return words.refuse(NEVER_WROTE, private_reply=request.purpose is Purpose.PRIVATE_REPLY)
    situation = _Situation(now, last, max(now - last, timedelta(0)), conversation.page_utility_opt_in)

    if request.tag is not None:
        candidates = policy.rules_for_tag(request.tag)
    else:
        candidates = tuple(rule for rule in policy.rules if not rule.only_when_requested)
    failures: list[tuple[int, timedelta, SendingRule, str]] = []
    for rule in candidates:
        failed = _failed_check(rule, request, situation)
        if failed is None:
            return words.allow(rule, situation)
        reach = rule.window_to if rule.window_to is not None else timedelta.max
        failures.append((_CHECKS.index(failed), reach, rule, failed))
    # The rule that got furthest explains the refusal best; among rules that were only too late, the one with
    # the longest window (a person at 8 days hears about HUMAN_AGENT's 7 days, not UPDATE's 24 hours).
    _, _, rule, failed = max(failures, key=lambda failure: (failure[0], failure[1]))

    if failed == "too_early" and request.tag is not None:
        untagged = (r for r in policy.rules if r.tag is None and not r.only_when_requested)
        standard = _first_fitting(untagged, replace(request, tag=None), situation)
        if standard is not None:
            return words.allow(standard, situation, dropped_tag=request.tag)

    code = _reason_code(rule, failed, request)
    alternative = _alternative(policy, request, situation) if code in _WITH_ALTERNATIVES else None
    return words.refuse(code, rule=rule, request=request, situation=situation, alternative=alternative)


def _reason_code(rule: SendingRule, failed: str, request: _Request) -> str:
    if failed == "sender":
        return HUMAN_AGENT_BOT_SENDER if rule.tag == HUMAN_AGENT_TAG else SENDER_NOT_ALLOWED
    if failed == "purpose":
        return PURPOSE_NOT_ALLOWED
    if failed == "content":
        return CONTENT_NOT_ALLOWED
    if failed == "promotional":
        return PROMOTIONAL_OUTSIDE_WINDOW
    if failed == "not_yet_valid":
        return RULE_NOT_YET_VALID
    if failed == "retired":
        return TAG_RETIRED if rule.tag is not None else RULE_EXPIRED
    if failed == "opt_in":
        return UTILITY_NOT_ENABLED
    if failed == "too_late" and request.promotional:
        return PROMOTIONAL_OUTSIDE_WINDOW
    if failed == "too_late" and rule.tag == HUMAN_AGENT_TAG:
        return HUMAN_AGENT_WINDOW_EXPIRED
    return OUTSIDE_WINDOW


_WITH_ALTERNATIVES = frozenset(
    {
        OUTSIDE_WINDOW,
        HUMAN_AGENT_WINDOW_EXPIRED,
        HUMAN_AGENT_BOT_SENDER,
        TAG_RETIRED,
        RULE_EXPIRED,
        SENDER_NOT_ALLOWED,
        UTILITY_NOT_ENABLED,
    }
)


def _alternative(policy: Policy, request: _Request, situation: _Situation) -> SendingRule | None:
    """What would work instead, for the agent's sentence: the same message without its tag, a person with
    HUMAN_AGENT, a tag that must be asked for, or a utility template."""
    if request.purpose is Purpose.PRIVATE_REPLY:
        return None
    automatic = tuple(rule for rule in policy.rules if not rule.only_when_requested)
    on_request = tuple(rule for rule in policy.rules if rule.only_when_requested)
    plain = replace(request, tag=None, promotional=False)
    tries: list[tuple[tuple[SendingRule, ...], _Request]] = []
    if request.tag is not None:
        tries.append((automatic, plain))
    if request.sender is not SenderKind.HUMAN:
        tries.append((automatic, replace(plain, sender=SenderKind.HUMAN, content=ContentKind.STANDARD)))
    if request.tag is None:
        tries.append((on_request, plain))
    if request.content is not ContentKind.UTILITY_TEMPLATE:
        sender = SenderKind.BOT if request.sender is SenderKind.HUMAN else request.sender
        tries.append((automatic, replace(plain, sender=sender, content=ContentKind.UTILITY_TEMPLATE)))
    for rules, variant in tries:
        found = _first_fitting(rules, variant, situation)
        if found is not None:
            return found
    return None


# --- sentences -----------------------------------------------------------------------------------------------

_MESES = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SENDER_ES = {SenderKind.BOT: "el bot", SenderKind.HUMAN: "una persona", SenderKind.SYSTEM: "un envío programado"}
_SENDER_EN = {SenderKind.BOT: "the bot", SenderKind.HUMAN: "a person", SenderKind.SYSTEM: "a scheduled send"}
_PURPOSE_ES = {
    Purpose.REPLY: "respuestas",
    Purpose.FOLLOW_UP: "mensajes de seguimiento",
    Purpose.PRIVATE_REPLY: "respuestas privadas a comentarios",
}
_PURPOSE_EN = {Purpose.REPLY: "replies", Purpose.FOLLOW_UP: "follow-ups", Purpose.PRIVATE_REPLY: "private replies"}
_CONTENT_ES = {
    ContentKind.STANDARD: "mensajes normales",
    ContentKind.UTILITY_TEMPLATE: "plantillas de utilidad",
    ContentKind.CUSTOMER_FEEDBACK_TEMPLATE: "la plantilla de encuesta (customer_feedback)",
}
_CONTENT_EN = {
    ContentKind.STANDARD: "ordinary messages",
    ContentKind.UTILITY_TEMPLATE: "utility templates",
    ContentKind.CUSTOMER_FEEDBACK_TEMPLATE: "the customer feedback template",
}


def _how(rule: SendingRule) -> str:
    return f"la etiqueta {rule.tag}" if rule.tag else rule.messaging_type


def _how_en(rule: SendingRule) -> str:
    return f"the {rule.tag} tag" if rule.tag else rule.messaging_type


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class _Words:
    """Sentences for agents, times in UTC; `window_ends_at` is there for a console to show local time."""

    now: datetime

    def when_es(self, at: datetime, with_time: bool = True) -> str:
        text = f"{at.day} de {_MESES[at.month - 1]}"
        if at.year != self.now.year or not with_time:
            text += f" de {at.year}"
        return text + (f", {at:%H:%M} UTC" if with_time else "")

    def when_en(self, at: datetime, with_time: bool = True) -> str:
        text = f"{_MONTHS[at.month - 1]} {at.day}"
        if at.year != self.now.year or not with_time:
            text += f", {at.year}"
        return text + (f", {at:%H:%M} UTC" if with_time else "")

    def until(self, rule: SendingRule, last: datetime) -> tuple[str, str]:
        """'hasta el 2 de diciembre, 14:05 UTC' for a window, 'antes del 27 de abril de 2026' for a retirement."""
        ends = rule.ends_at(last)
        if ends is None:
            return "", ""
        if rule.valid_until is not None and ends == rule.valid_until:
            return (
                f" antes del {self.when_es(ends, with_time=False)}",
                f" before {self.when_en(ends, with_time=False)}",
            )
        return f" hasta el {self.when_es(ends)}", f" until {self.when_en(ends)}"

    def allow(self, rule: SendingRule, situation: _Situation, dropped_tag: str | None = None) -> Decision:
        until_es, until_en = self.until(rule, situation.last)
        if dropped_tag is not None:
            window = rule.window_to if rule.window_to is not None else situation.elapsed
            es = (
                f"El cliente escribió dentro de las últimas {_duration_es(window)}: se envía como "
                f"{rule.messaging_type}, sin la etiqueta {dropped_tag}, que dentro de la ventana no hace falta."
            )
            en = (
                f"The customer wrote within the last {_duration_en(window)}: sent as {rule.messaging_type} "
                f"without the {dropped_tag} tag, which is not needed inside the window."
            )
            code = TAG_NOT_NEEDED
        else:
            es = f"Se puede enviar con {_how(rule)}{until_es}."
            en = f"Can be sent with {_how_en(rule)}{until_en}."
            code = ALLOWED
        return Decision(
            allowed=True,
            reason_code=code,
            reason_es=es,
            reason_en=en,
            messaging_type=rule.messaging_type,
            tag=rule.tag,
            rule=rule.name,
            window_ends_at=rule.ends_at(situation.last),
        )

    def refuse(
        self,
        code: str,
        *,
        tag: str | None = None,
        private_reply: bool = False,
        rule: SendingRule | None = None,
        request: _Request | None = None,
        situation: _Situation | None = None,
        alternative: SendingRule | None = None,
    ) -> Decision:
        es, en = self._refusal(code, tag, private_reply, rule, request, situation)
        alternative_until = None
        if alternative is not None and situation is not None:
            alt_es, alt_en = self._alternative(alternative, request, situation)
            es, en = f"{es} {alt_es}", f"{en} {alt_en}"
            alternative_until = alternative.ends_at(situation.last)
        elif code in (OUTSIDE_WINDOW, HUMAN_AGENT_WINDOW_EXPIRED) and (
            request is None or request.purpose is not Purpose.PRIVATE_REPLY
        ):
            es += " El cliente tiene que escribir de nuevo para reabrir la conversación."
            en += " The customer has to write again to reopen the conversation."
        return Decision(
            allowed=False,
            reason_code=code,
            reason_es=es,
            reason_en=en,
            rule=rule.name if rule is not None else None,
            alternative=alternative.name if alternative is not None else None,
            alternative_until=alternative_until,
        )

    def _refusal(
        self,
        code: str,
        tag: str | None,
        private_reply: bool,
        rule: SendingRule | None,
        request: _Request | None,
        situation: _Situation | None,
    ) -> tuple[str, str]:
        if code == UNKNOWN_TAG:
            known = ", ".join(sorted(MESSAGE_TAGS))
            return (
                f"La etiqueta «{tag}» no existe en Messenger. Etiquetas conocidas: {known}.",
                f"There is no Messenger tag {tag!r}. Known tags: {known}.",
            )
        if code == PROMOTIONAL_WITH_TAG:
            return (
                f"El contenido promocional (ofertas, cupones, descuentos) nunca se puede enviar con una etiqueta "
                f"de mensaje como {tag}: Meta lo prohíbe y puede restringir la página.",
                f"Promotional content (offers, coupons, discounts) can never be sent with a message tag such as "
                f"{tag}: Meta forbids it and may restrict the page.",
            )
        if code == TAG_NOT_IN_POLICY:
            return (
                f"La etiqueta {tag} no está habilitada en la política de envío de esta instalación.",
                f"The {tag} tag is not enabled in this deployment's sending policy.",
            )
        if code == NEVER_WROTE:
            if private_reply:
                return (
                    "No consta el comentario al que se quiere responder en privado.",
                    "There is no comment on record to reply to privately.",
                )
            return (
                "Este cliente nunca ha escrito a esta página: Messenger solo permite escribir a quien inició la "
                "conversación.",
                "This customer has never written to this page: Messenger only allows messaging people who started "
                "the conversation.",
            )
        assert rule is not None and request is not None and situation is not None
        last_es, last_en = self.when_es(situation.last), self.when_en(situation.last)
        if request.purpose is Purpose.PRIVATE_REPLY:
            since_es, since_en = "el comentario del cliente", "the customer's comment"
        else:
            since_es, since_en = "el último mensaje del cliente", "the customer's last message"
        if code == HUMAN_AGENT_BOT_SENDER:
            return (
                f"La etiqueta HUMAN_AGENT es solo para mensajes escritos por una persona; {_SENDER_ES[request.sender]} "
                "no puede usarla.",
                f"The HUMAN_AGENT tag is only for messages written by a person; {_SENDER_EN[request.sender]} cannot "
                "use it.",
            )
        if code == SENDER_NOT_ALLOWED:
            return (
                f"{_first_upper(_how(rule))} no admite mensajes de {_SENDER_ES[request.sender]}.",
                f"{_first_upper(_how_en(rule))} does not accept messages from {_SENDER_EN[request.sender]}.",
            )
        if code == PURPOSE_NOT_ALLOWED:
            return (
                f"{_first_upper(_how(rule))} no sirve para {_PURPOSE_ES[request.purpose]}.",
                f"{_first_upper(_how_en(rule))} cannot be used for {_PURPOSE_EN[request.purpose]}.",
            )
        if code == CONTENT_NOT_ALLOWED:
            kinds_es = " o ".join(_CONTENT_ES[kind] for kind in sorted(rule.content))
            kinds_en = " or ".join(_CONTENT_EN[kind] for kind in sorted(rule.content))
            return (
                f"{_first_upper(_how(rule))} solo se puede usar con {kinds_es}.",
                f"{_first_upper(_how_en(rule))} can only be used with {kinds_en}.",
            )
        if code == TAG_RETIRED:
            assert rule.valid_until is not None
            return (
                f"Meta retiró la etiqueta {rule.tag} el {self.when_es(rule.valid_until, with_time=False)}; ya no se "
                "puede usar.",
                f"Meta retired the {rule.tag} tag on {self.when_en(rule.valid_until, with_time=False)}; it can no "
                "longer be used.",
            )
        if code == RULE_EXPIRED:
            assert rule.valid_until is not None
            return (
                f"{_first_upper(_how(rule))} dejó de estar disponible el "
                f"{self.when_es(rule.valid_until, with_time=False)}.",
                f"{_first_upper(_how_en(rule))} stopped being available on "
                f"{self.when_en(rule.valid_until, with_time=False)}.",
            )
        if code == RULE_NOT_YET_VALID:
            assert rule.valid_from is not None
            return (
                f"{_first_upper(_how(rule))} solo se puede usar desde el {self.when_es(rule.valid_from)}.",
                f"{_first_upper(_how_en(rule))} can only be used from {self.when_en(rule.valid_from)}.",
            )
        if code == UTILITY_NOT_ENABLED:
            return (
                "Esta página no tiene activadas las plantillas de utilidad (Meta solo las ofrece en algunos "
                "mercados); un administrador puede activarlas si están disponibles.",
                "Utility templates are not enabled for this page (Meta offers them only in some markets); an "
                "admin can enable them where available.",
            )
        if code == PROMOTIONAL_OUTSIDE_WINDOW:
            window = rule.window_to if rule.window_to is not None else timedelta(hours=24)
            return (
                f"El contenido promocional solo se puede enviar dentro de las {_duration_es(window)} siguientes al "
                f"último mensaje del cliente ({last_es}), nunca con etiqueta; ese plazo ya pasó.",
                f"Promotional content can only be sent within {_duration_en(window)} of the customer's last "
                f"message ({last_en}), never with a tag; that time is over.",
            )
        if code == HUMAN_AGENT_WINDOW_EXPIRED:
            assert rule.window_to is not None
            return (
                f"Han pasado más de {_duration_es(rule.window_to)} desde el último mensaje del cliente ({last_es}): "
                "ya no se puede responder, ni siquiera con la etiqueta HUMAN_AGENT.",
                f"More than {_duration_en(rule.window_to)} have passed since the customer's last message "
                f"({last_en}): no reply is possible any more, not even with the HUMAN_AGENT tag.",
            )
        # OUTSIDE_WINDOW
        if situation.elapsed < rule.window_from:
            return (
                f"{_first_upper(_how(rule))} solo se usa a partir de {_duration_es(rule.window_from)} después de "
                f"{since_es} ({last_es}).",
                f"{_first_upper(_how_en(rule))} only applies from {_duration_en(rule.window_from)} after "
                f"{since_en} ({last_en}).",
            )
        window = rule.window_to if rule.window_to is not None else timedelta(0)
        return (
            f"Han pasado más de {_duration_es(window)} desde {since_es} ({last_es}).",
            f"More than {_duration_en(window)} have passed since {since_en} ({last_en}).",
        )

    def _alternative(
        self, alternative: SendingRule, request: _Request | None, situation: _Situation
    ) -> tuple[str, str]:
        until_es, until_en = self.until(alternative, situation.last)
        if alternative.tag == HUMAN_AGENT_TAG:
            return (
                f"Un agente aún puede responder con la etiqueta HUMAN_AGENT{until_es}.",
                f"A person can still answer with the HUMAN_AGENT tag{until_en}.",
            )
        if alternative.messaging_type == UTILITY:
            return (
                f"Se puede enviar una plantilla de utilidad aprobada (UTILITY){until_es}.",
                f"An approved utility template (UTILITY) can be sent{until_en}.",
            )
        if alternative.only_when_requested:
            return (
                f"Si el mensaje corresponde al caso de uso de {alternative.tag}, se puede pedir esa "
                f"etiqueta{until_es}.",
                f"If the message fits the {alternative.tag} use case, that tag can be requested{until_en}.",
            )
        if request is not None and request.sender not in alternative.senders:
            return (
                f"Un agente aún puede responder con {_how(alternative)}{until_es}.",
                f"A person can still answer with {_how_en(alternative)}{until_en}.",
            )
        return (
            f"Se puede enviar sin etiqueta, con {_how(alternative)}{until_es}.",
            f"It can be sent without a tag, with {_how_en(alternative)}{until_en}.",
        )


def _duration_parts(value: timedelta) -> tuple[int, int, int]:
    """Whole days from 2 days up ("7 días"), else hours ("24 horas", as Meta says it) and minutes."""
    minutes = int(value.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    if days >= 2 and not rest:
        return days, 0, 0
    hours, minutes = divmod(minutes, 60)
    return 0, hours, minutes


def _duration_es(value: timedelta) -> str:
    days, hours, minutes = _duration_parts(value)
    if days:
        return f"{days} días"
    parts = [f"{hours} hora{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not parts:
        parts.append(f"{minutes} minuto{'s' if minutes != 1 else ''}")
    return " y ".join(parts)


def _duration_en(value: timedelta) -> str:
    days, hours, minutes = _duration_parts(value)
    if days:
        return f"{days} days"
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not parts:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " and ".join(parts)


# --- loading -------------------------------------------------------------------------------------------------

_RULE_FIELDS = frozenset(
    {
        "name",
        "messaging_type",
        "tag",
        "senders",
        "purposes",
        "window_from",
        "window_to",
        "promotional_allowed",
        "valid_from",
        "valid_until",
        "requires_page_opt_in",
        "content",
        "only_when_requested",
    }
)
_REQUIRED_RULE_FIELDS = frozenset(
    {"name", "messaging_type", "tag", "senders", "purposes", "window_from", "window_to", "promotional_allowed"}
)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def load_policy(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Policy:
    """Read the policy: `path`, else $OUTBOX_POLICY_FILE, else outbox/policy.yml. $OUTBOX_RETIRED_TAGS_UNTIL
    (YYYY-MM-DD) moves the retirement date of the three tags Meta retired in 2026."""
    environ = os.environ if env is None else env
    chosen = Path(path) if path is not None else Path(environ.get(POLICY_FILE_ENV) or DEFAULT_POLICY_FILE)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{chosen}: cannot read the policy file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{chosen}: not valid YAML: {exc}") from exc
    retired_until: datetime | None = None
    raw_until = (environ.get(RETIRED_TAGS_UNTIL_ENV) or "").strip()
    if raw_until:
        try:
            retired_until = _parse_date(raw_until, RETIRED_TAGS_UNTIL_ENV)
        except ValueError as exc:
            raise PolicyFileError(f"{RETIRED_TAGS_UNTIL_ENV}={raw_until!r}: {exc}") from exc
    return parse_policy(data, source=str(chosen), retired_tags_until=retired_until)


def parse_policy(data: Any, source: str = "<memory>", retired_tags_until: datetime | None = None) -> Policy:
    """Build a `Policy` from the YAML's data, with an error that names the file, the rule and the field."""
    if not isinstance(data, Mapping):
        raise PolicyFileError(f"{source}: the policy must be a mapping with `version` and `rules`")
    unknown = set(data) - {"version", "rules"}
    if unknown:
        raise PolicyFileError(f"{source}: unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    version = data.get("version")
    if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version).strip():
        raise PolicyFileError(f'{source}: `version` is required (a string such as "2026-11-25")')
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyFileError(f"{source}: `rules` must be a non-empty list")
    rules = []
    for index, raw in enumerate(raw_rules, start=1):
        label = f"rule {index}"
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        try:
            rule = _parse_rule(raw)
            if retired_tags_until is not None and rule.tag in RETIRED_TAGS:
                rule = replace(rule, valid_until=retired_tags_until)
        except (ValueError, TypeError) as exc:
            raise PolicyFileError(f"{source}: {label}: {exc}") from exc
        rules.append(rule)
    try:
        return Policy(version=str(version), rules=tuple(rules), source=source)
    except ValueError as exc:
        raise PolicyFileError(f"{source}: {exc}") from exc


def _parse_rule(raw: Any) -> SendingRule:
    if not isinstance(raw, Mapping):
        raise ValueError("a rule must be a mapping")
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    missing = _REQUIRED_RULE_FIELDS - set(raw)
    if missing:
        raise ValueError(f"missing fields: {', '.join(sorted(missing))}")
    tag = raw["tag"]
    if tag is not None and not isinstance(tag, str):
        raise ValueError("tag must be a string or null")
    window_to = raw["window_to"]
    return SendingRule(
        name=_string(raw["name"], "name"),
        messaging_type=_string(raw["messaging_type"], "messaging_type"),
        tag=tag,
        senders=_members(raw["senders"], "senders", SenderKind),
        purposes=_members(raw["purposes"], "purposes", Purpose),
        window_from=_parse_duration(raw["window_from"], "window_from"),
        window_to=None if window_to is None else _parse_duration(window_to, "window_to"),
        promotional_allowed=_flag(raw["promotional_allowed"], "promotional_allowed"),
        valid_from=_optional_date(raw.get("valid_from"), "valid_from"),
        valid_until=_optional_date(raw.get("valid_until"), "valid_until"),
        requires_page_opt_in=_flag(raw.get("requires_page_opt_in", False), "requires_page_opt_in"),
        content=_members(raw["content"], "content", ContentKind) if "content" in raw else DEFAULT_CONTENT,
        only_when_requested=_flag(raw.get("only_when_requested", False), "only_when_requested"),
    )


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _members(value: Any, name: str, kind: Any) -> frozenset[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a non-empty list")
    allowed = [member.value for member in kind]
    members = set()
    for item in value:
        if item not in allowed:
            raise ValueError(f"{name}: unknown value {item!r}; allowed: {', '.join(allowed)}")
        members.add(kind(item))
    return frozenset(members)


def _parse_duration(value: Any, name: str) -> timedelta:
    if value == 0 and not isinstance(value, bool):
        return timedelta(0)
    match = _DURATION.match(value) if isinstance(value, str) and value else None
    if match is None or not any(match.groups()):
        raise ValueError(f"{name}: {value!r} is not a duration such as 0, 30m, 24h, 7d or 1d12h")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _optional_date(value: Any, name: str) -> datetime | None:
    return None if value is None else _parse_date(value, name)


def _parse_date(value: Any, name: str) -> datetime:
    """A date means 00:00 UTC; a time must say its zone (Python 3.10's fromisoformat does not read 'Z')."""
    if isinstance(value, datetime):
        return _aware(value, name)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return _parse_date(date.fromisoformat(text), name)
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO time with a zone") from exc
        return _aware(parsed, name)
    raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO time with a zone")


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {type(value).__name__}")
    try:
        return utc(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
