"""Which way of sending Meta allows for a message, decided by a pure function over a policy file.

`decide(message, conversation, now, policy)` returns a `Decision`: how to send (messaging_type, tag) or why not,
with a machine reason code and a sentence an agent understands, in Spanish and English (worded by
`outbox.wording`). The rules themselves are data (`outbox/policy.yml`, read by `outbox.policy_file`, overridable per
deployment): when Meta moves them again, nobody edits this module.

Standard library, Python 3.10: the Rasa process imports it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, Protocol

from meta.limits import MESSAGE_TAGS, MESSAGING_TYPES
from outbox.model import OutboxInputError, Purpose, SenderKind, utc
from outbox.wording import PUBLIC_COMMENT, Facts, explain, explain_alternative, explain_write_again

HUMAN_AGENT_TAG = "HUMAN_AGENT"

# meta/limits.py does not know UTILITY yet (nor does the sandbox validator); the policy does.
UTILITY = "UTILITY"
SEND_MESSAGING_TYPES = MESSAGING_TYPES | {UTILITY}
# Not a Send API message: a public reply posted under the comment (Graph POST /{comment_id}/comments). The rules
# for Purpose.PUBLIC_REPLY say COMMENT, and only they do; nothing of it goes on the wire as a messaging_type.
COMMENT = PUBLIC_COMMENT
RULE_MESSAGING_TYPES = SEND_MESSAGING_TYPES | {COMMENT}

# Webhook event kinds (meta.events.EventKind values) that are the user's own doing and reopen the standard
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
REASON_CODES = REFUSAL_CODES | {ALLOWED, TAG_NOT_NEEDED}  # every code `decide` returns; outbox.wording words each


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
        if self.messaging_type not in RULE_MESSAGING_TYPES:
            raise ValueError(
                f"messaging_type {self.messaging_type!r} is not one of {', '.join(sorted(RULE_MESSAGING_TYPES))}"
            )
        if (self.messaging_type == COMMENT) != (Purpose.PUBLIC_REPLY in self.purposes):
            raise ValueError("public replies (purpose public_reply) go with messaging_type COMMENT, and COMMENT is "
                             "for public replies only")
        if self.messaging_type == COMMENT and self.purposes != {Purpose.PUBLIC_REPLY}:
            raise ValueError("a COMMENT rule serves public_reply only: a comment is not a Messenger message")
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
                object.__setattr__(self, name, aware_utc(value, name))
        if self.valid_from is not None and self.valid_until is not None and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")

    def ends_at(self, last_user_message_at: datetime) -> datetime | None:
        """When a send under this rule stops being possible: the window's end or the retirement, whichever first."""
        ends = [self.valid_until] if self.valid_until is not None else []
        if self.window_to is not None:
            ends.append(last_user_message_at + self.window_to)
        return min(ends) if ends else None


@dataclass(frozen=True)
class SendRates:
    """Per page, per second (policy.yml `send_rates`): Meta's Send API limits (`calls_per_second`; messages with
    audio or video: `audio_video_per_second`) and the outbox's share of them when OUTBOX_PAGE_RATE is not set
    (`outbox_per_second`: the sender actions the channel sends outside the outbox count against the same limit)."""

    calls_per_second: float
    audio_video_per_second: float
    outbox_per_second: float

    def __post_init__(self) -> None:
        for name in ("calls_per_second", "audio_video_per_second", "outbox_per_second"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if self.outbox_per_second > self.calls_per_second:
            raise ValueError(f"outbox_per_second ({self.outbox_per_second:g}) must not exceed Meta's "
                             f"calls_per_second ({self.calls_per_second:g})")


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[SendingRule, ...]
    source: str = "<memory>"
    send_rates: SendRates | None = None  # None (a policy built in code): no rate of its own

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

    def reply_windows(self) -> ReplyWindows:
        """How long after a person's last own message the page may answer: the `window_to` of the RESPONSE rule (the
        standard window) and of the HUMAN_AGENT rule (a person, with the tag)."""
        standard, human = self.rule("RESPONSE").window_to, self.rule("HUMAN_AGENT").window_to
        if standard is None or human is None:
            raise ValueError("the policy's RESPONSE and HUMAN_AGENT rules must end (window_to)")
        return ReplyWindows(standard, human)


@dataclass(frozen=True)
class ReplyWindows:
    """The two windows a person's last own message opens (`Policy.reply_windows`): what contacts and agents are shown,
    read from the policy the outbox sends by, never hard-coded."""

    standard: timedelta
    human_agent: timedelta


@dataclass(frozen=True)
class ConversationWindow:
    """What the policy needs to know about one user on one page."""

    last_user_message_at: datetime | None  # only the user's own messages, on this page (private reply: the comment)
    page_utility_opt_in: bool = False

    def __post_init__(self) -> None:
        if self.last_user_message_at is not None:
            object.__setattr__(
                self, "last_user_message_at", aware_utc(self.last_user_message_at, "last_user_message_at")
            )


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
    kind: str  # a meta.events.EventKind value, or bot_message/agent_message for what we sent
    page_id: str
    at: datetime


def last_user_message_at(events: Iterable[tuple[Any, str, datetime]], page_id: str) -> datetime | None:
    """The latest time the user did something that reopens the window on this page (`USER_EVENT_KINDS`)."""
    latest: datetime | None = None
    for kind, event_page_id, at in events:
        name = kind.value if isinstance(kind, Enum) else str(kind)
        if event_page_id != page_id or name not in USER_EVENT_KINDS:
            continue
        at = aware_utc(at, "event time")
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
_Check = Callable[[SendingRule, _Request, _Situation], bool]  # True: the rule does not fit
_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("content", lambda rule, request, situation: request.content not in rule.content),
    ("sender", lambda rule, request, situation: request.sender not in rule.senders),
    ("purpose", lambda rule, request, situation: request.purpose not in rule.purposes),
    ("promotional", lambda rule, request, situation: request.promotional and not rule.promotional_allowed),
    ("not_yet_valid", lambda rule, request, situation: rule.valid_from is not None and situation.now < rule.valid_from),
    ("retired", lambda rule, request, situation: rule.valid_until is not None and situation.now >= rule.valid_until),
    ("opt_in", lambda rule, request, situation: rule.requires_page_opt_in and not situation.opted_in),
    ("too_early", lambda rule, request, situation: situation.elapsed < rule.window_from),
    ("too_late", lambda rule, request, situation: rule.window_to is not None and situation.elapsed > rule.window_to),
)
_CHECK_ORDER = tuple(name for name, _ in _CHECKS)


def _failed_check(rule: SendingRule, request: _Request, situation: _Situation) -> str | None:
    for name, fails in _CHECKS:
        if fails(rule, request, situation):
            return name
    return None


def _first_fitting(rules: Iterable[SendingRule], request: _Request, situation: _Situation) -> SendingRule | None:
    for rule in rules:
        if _failed_check(rule, request, situation) is None:
            return rule
    return None


def decide(message: SendRequest, conversation: ConversationWindow, now: datetime, policy: Policy) -> Decision:
    """How to send `message` now, or why not. Pure: the same inputs give the same decision."""
    now = aware_utc(now, "now")
    request = _Request(
        sender=SenderKind(message.sender),
        purpose=Purpose(message.purpose),
        tag=message.tag,
        promotional=bool(message.promotional),
        content=content_kind(getattr(message, "message", None)),
    )
    asked = Facts(now, tag=request.tag, sender=request.sender, purpose=request.purpose)
    if request.tag is not None:
        if request.tag not in MESSAGE_TAGS:
            return _refused(UNKNOWN_TAG, asked)
        if request.promotional:
            return _refused(PROMOTIONAL_WITH_TAG, asked)
        if not policy.rules_for_tag(request.tag):
            return _refused(TAG_NOT_IN_POLICY, asked)
    last = conversation.last_user_message_at
    if last is None:
        return _refused(NEVER_WROTE, asked)
    situation = _Situation(now, last, max(now - last, timedelta(0)), conversation.page_utility_opt_in)

    if request.tag is not None:
        candidates = policy.rules_for_tag(request.tag)
    else:
        candidates = tuple(rule for rule in policy.rules if not rule.only_when_requested)
    failures: list[tuple[int, timedelta, SendingRule, str]] = []
    for rule in candidates:
        failed = _failed_check(rule, request, situation)
        if failed is None:
            return _allowed(ALLOWED, rule, asked, situation)
        reach = rule.window_to if rule.window_to is not None else timedelta.max
        failures.append((_CHECK_ORDER.index(failed), reach, rule, failed))
    # The rule that got furthest explains the refusal best; among rules that were only too late, the one with
    # the longest window (a person at 8 days hears about HUMAN_AGENT's 7 days, not UPDATE's 24 hours).
    _, _, rule, failed = max(failures, key=lambda failure: (failure[0], failure[1]))

    if failed == "too_early" and request.tag is not None:
        untagged = (r for r in policy.rules if r.tag is None and not r.only_when_requested)
        standard = _first_fitting(untagged, replace(request, tag=None), situation)
        if standard is not None:
            return _allowed(TAG_NOT_NEEDED, standard, asked, situation)

    code = _reason_code(rule, failed, request)
    alternative = _alternative(policy, request, situation) if code in _WITH_ALTERNATIVES else None
    return _refused(code, _facts(asked, situation, rule), alternative)


def _facts(asked: Facts, situation: _Situation, rule: SendingRule) -> Facts:
    return Facts(asked.now, asked.tag, rule, asked.sender, asked.purpose, situation.last, situation.elapsed)


def _allowed(code: str, rule: SendingRule, asked: Facts, situation: _Situation) -> Decision:
    es, en = explain(code, _facts(asked, situation, rule))
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


# Refusals only the customer can lift by writing again, said so when no other way of sending is left.
_WRITE_AGAIN = frozenset({OUTSIDE_WINDOW, HUMAN_AGENT_WINDOW_EXPIRED})


def _refused(code: str, facts: Facts, alternative: SendingRule | None = None) -> Decision:
    es, en = explain(code, facts)
    alternative_until = None
    if alternative is not None and facts.last is not None:
        alternative_es, alternative_en = explain_alternative(alternative, facts)
        es, en = f"{es} {alternative_es}", f"{en} {alternative_en}"
        alternative_until = alternative.ends_at(facts.last)
    elif code in _WRITE_AGAIN and facts.purpose not in (Purpose.PRIVATE_REPLY, Purpose.PUBLIC_REPLY):
        again_es, again_en = explain_write_again(facts)
        es, en = f"{es} {again_es}", f"{en} {again_en}"
    return Decision(
        allowed=False,
        reason_code=code,
        reason_es=es,
        reason_en=en,
        rule=facts.rule.name if facts.rule is not None else None,
        alternative=alternative.name if alternative is not None else None,
        alternative_until=alternative_until,
    )


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
    if request.purpose in (Purpose.PRIVATE_REPLY, Purpose.PUBLIC_REPLY):
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


def aware_utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive time is an error that names the field (the policy file's loader uses it too)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {type(value).__name__}")
    try:
        return utc(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
