"""The sentences a sending decision is explained with, for agents, in Spanish and in English.

`outbox.policy.decide()` picks a reason code and the facts behind it; this module only words them. `TEMPLATES`
pairs each reason code (and the few sentences around it) with a Spanish and an English template, and `explain()`
fills the template's fields from the facts: the rule's name, the customer's last message, durations, dates. Times
are said in UTC; `Decision.window_ends_at` is there for a console to show local time.

Below the decisions: it reads a rule through `RuleFacts` and never imports `outbox.policy`, which imports it.
Standard library, Python 3.10: the Rasa process imports it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from meta.limits import MESSAGE_TAGS
from outbox.model import Purpose, SenderKind


class Template(NamedTuple):
    es: str
    en: str


# Reason codes (outbox.policy) and the sentences said with them. `{How}` is `{how}` with a capital first letter.
TEMPLATES: Mapping[str, Template] = {
    # allowed
    "allowed": Template("Se puede enviar con {how}{until}.", "Can be sent with {how}{until}."),
    "tag_not_needed": Template(
        "El cliente escribió dentro de las últimas {window}: se envía como {messaging_type}, sin la etiqueta {tag}, "
        "que dentro de la ventana no hace falta.",
        "The customer wrote within the last {window}: sent as {messaging_type} without the {tag} tag, which is not "
        "needed inside the window.",
    ),
    # refused for what was asked, before any rule
    "unknown_tag": Template(
        "La etiqueta «{tag}» no existe en Messenger. Etiquetas conocidas: {known}.",
        "There is no Messenger tag {tag!r}. Known tags: {known}.",
    ),
    "promotional_with_tag": Template(
        "El contenido promocional (ofertas, cupones, descuentos) nunca se puede enviar con una etiqueta de mensaje "
        "como {tag}: Meta lo prohíbe y puede restringir la página.",
        "Promotional content (offers, coupons, discounts) can never be sent with a message tag such as {tag}: Meta "
        "forbids it and may restrict the page.",
    ),
    "tag_not_in_policy": Template(
        "La etiqueta {tag} no está habilitada en la política de envío de esta instalación.",
        "The {tag} tag is not enabled in this deployment's sending policy.",
    ),
    "never_wrote": Template(
        "Este cliente nunca ha escrito a esta página: Messenger solo permite escribir a quien inició la conversación.",
        "This customer has never written to this page: Messenger only allows messaging people who started the "
        "conversation.",
    ),
    "never_wrote:private_reply": Template(
        "No consta el comentario al que se quiere responder en privado.",
        "There is no comment on record to reply to privately.",
    ),
    "never_wrote:public_reply": Template(
        "No consta el comentario al que se quiere responder públicamente.",
        "There is no comment on record to reply to publicly.",
    ),
    # refused by the rule that got furthest
    "human_agent_bot_sender": Template(
        "La etiqueta HUMAN_AGENT es solo para mensajes escritos por una persona; {sender} no puede usarla.",
        "The HUMAN_AGENT tag is only for messages written by a person; {sender} cannot use it.",
    ),
    "sender_not_allowed": Template(
        "{How} no admite mensajes de {sender}.", "{How} does not accept messages from {sender}."
    ),
    "purpose_not_allowed": Template("{How} no sirve para {purpose}.", "{How} cannot be used for {purpose}."),
    "content_not_allowed": Template("{How} solo se puede usar con {kinds}.", "{How} can only be used with {kinds}."),
    "tag_retired": Template(
        "Meta retiró la etiqueta {rule_tag} el {valid_until}; ya no se puede usar.",
        "Meta retired the {rule_tag} tag on {valid_until}; it can no longer be used.",
    ),
    "rule_expired": Template(
        "{How} dejó de estar disponible el {valid_until}.", "{How} stopped being available on {valid_until}."
    ),
    "rule_not_yet_valid": Template(
        "{How} solo se puede usar desde el {valid_from}.", "{How} can only be used from {valid_from}."
    ),
    "utility_not_enabled": Template(
        "Esta página no tiene activadas las plantillas de utilidad (Meta solo las ofrece en algunos mercados); un "
        "administrador puede activarlas si están disponibles.",
        "Utility templates are not enabled for this page (Meta offers them only in some markets); an admin can "
        "enable them where available.",
    ),
    "promotional_outside_window": Template(
        "El contenido promocional solo se puede enviar dentro de las {window} siguientes al último mensaje del "
        "cliente ({last}), nunca con etiqueta; ese plazo ya pasó.",
        "Promotional content can only be sent within {window} of the customer's last message ({last}), never with "
        "a tag; that time is over.",
    ),
    "human_agent_window_expired": Template(
        "Han pasado más de {window} desde el último mensaje del cliente ({last}): ya no se puede responder, ni "
        "siquiera con la etiqueta HUMAN_AGENT.",
        "More than {window} have passed since the customer's last message ({last}): no reply is possible any more, "
        "not even with the HUMAN_AGENT tag.",
    ),
    "outside_window": Template(
        "Han pasado más de {window} desde {since} ({last}).", "More than {window} have passed since {since} ({last})."
    ),
    "outside_window:too_early": Template(
        "{How} solo se usa a partir de {window_from} después de {since} ({last}).",
        "{How} only applies from {window_from} after {since} ({last}).",
    ),
    # after a refusal: what would work instead, or that nothing will
    "alternative:human_agent": Template(
        "Un agente aún puede responder con la etiqueta HUMAN_AGENT{until}.",
        "A person can still answer with the HUMAN_AGENT tag{until}.",
    ),
    "alternative:utility": Template(
        "Se puede enviar una plantilla de utilidad aprobada (UTILITY){until}.",
        "An approved utility template (UTILITY) can be sent{until}.",
    ),
    "alternative:on_request": Template(
        "Si el mensaje corresponde al caso de uso de {rule_tag}, se puede pedir esa etiqueta{until}.",
        "If the message fits the {rule_tag} use case, that tag can be requested{until}.",
    ),
    "alternative:person": Template(
        "Un agente aún puede responder con {how}{until}.", "A person can still answer with {how}{until}."
    ),
    "alternative:untagged": Template(
        "Se puede enviar sin etiqueta, con {how}{until}.", "It can be sent without a tag, with {how}{until}."
    ),
    "write_again": Template(
        "El cliente tiene que escribir de nuevo para reabrir la conversación.",
        "The customer has to write again to reopen the conversation.",
    ),
    # refused by the store, not by a rule: Meta allows one private reply per comment
    "private_reply_already_sent": Template(
        "Este comentario ya recibió su respuesta privada: Messenger permite una sola por comentario.",
        "This comment already got its private reply: Messenger allows only one per comment.",
    ),
}

# outbox.policy.COMMENT: the "messaging type" of a public reply, which is a comment, not a Messenger message.
PUBLIC_COMMENT = "COMMENT"


class RuleFacts(Protocol):
    """What a sentence reads from a sending rule; `outbox.policy.SendingRule` is one."""

    @property
    def name(self) -> str: ...

    @property
    def messaging_type(self) -> str: ...

    @property
    def tag(self) -> str | None: ...

    @property
    def senders(self) -> Set[SenderKind]: ...

    @property
    def window_from(self) -> timedelta: ...

    @property
    def window_to(self) -> timedelta | None: ...

    @property
    def valid_from(self) -> datetime | None: ...

    @property
    def valid_until(self) -> datetime | None: ...

    @property
    def content(self) -> Set[str]: ...

    @property
    def only_when_requested(self) -> bool: ...

    def ends_at(self, last_user_message_at: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class Facts:
    """What a decision is about, as far as its sentences name it; `decide()` fills what it knows."""

    now: datetime  # a date in another year than now's says its year
    tag: str | None = None  # the tag the message asked for
    rule: RuleFacts | None = None  # the rule the sentence is about
    sender: SenderKind | None = None
    purpose: Purpose | None = None
    last: datetime | None = None  # the customer's last own message (a private reply: the comment)
    elapsed: timedelta | None = None  # since `last`


@dataclass(frozen=True)
class _Language:
    months: tuple[str, ...]
    day_month: str  # "{day}" and "{month}"
    of_year: str  # "{year}", after the day and month
    at_time: str  # "{time}" (HH:MM), after the date
    days: str  # "{days}", for whole days from 2 up
    hour: str
    minute: str
    and_: str  # between hours and minutes
    or_: str  # between content kinds
    tag: str  # "{tag}": how a rule with a tag is named
    until_retirement: str  # "{date}"
    until_window_end: str  # "{when}"
    since_comment: str
    since_message: str
    public_comment: str  # how a rule with messaging_type COMMENT is named
    senders: Mapping[SenderKind, str]
    purposes: Mapping[Purpose, str]
    contents: Mapping[str, str]  # by outbox.policy.ContentKind value


SPANISH = _Language(
    months=(
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
    ),
    day_month="{day} de {month}",
    of_year=" de {year}",
    at_time=", {time} UTC",
    days="{days} días",
    hour="hora",
    minute="minuto",
    and_=" y ",
    or_=" o ",
    tag="la etiqueta {tag}",
    until_retirement=" antes del {date}",
    until_window_end=" hasta el {when}",
    since_comment="el comentario del cliente",
    since_message="el último mensaje del cliente",
    public_comment="una respuesta pública bajo el comentario",
    senders={SenderKind.BOT: "el bot", SenderKind.HUMAN: "una persona", SenderKind.SYSTEM: "un envío programado"},
    purposes={
        Purpose.REPLY: "respuestas",
        Purpose.FOLLOW_UP: "mensajes de seguimiento",
        Purpose.PRIVATE_REPLY: "respuestas privadas a comentarios",
        Purpose.PUBLIC_REPLY: "respuestas públicas a comentarios",
    },
    contents={
        "standard": "mensajes normales",
        "utility_template": "plantillas de utilidad",
        "customer_feedback_template": "la plantilla de encuesta (customer_feedback)",
    },
)
ENGLISH = _Language(
    months=(
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
    ),
    day_month="{month} {day}",
    of_year=", {year}",
    at_time=", {time} UTC",
    days="{days} days",
    hour="hour",
    minute="minute",
    and_=" and ",
    or_=" or ",
    tag="the {tag} tag",
    until_retirement=" before {date}",
    until_window_end=" until {when}",
    since_comment="the customer's comment",
    since_message="the customer's last message",
    public_comment="a public reply under the comment",
    senders={SenderKind.BOT: "the bot", SenderKind.HUMAN: "a person", SenderKind.SYSTEM: "a scheduled send"},
    purposes={
        Purpose.REPLY: "replies",
        Purpose.FOLLOW_UP: "follow-ups",
        Purpose.PRIVATE_REPLY: "private replies",
        Purpose.PUBLIC_REPLY: "public replies to comments",
    },
    contents={
        "standard": "ordinary messages",
        "utility_template": "utility templates",
        "customer_feedback_template": "the customer feedback template",
    },
)


def explain(code: str, facts: Facts) -> Template:
    """The reason `code` for these facts, in Spanish and English."""
    return fill(_variant(code, facts), facts)


def explain_alternative(alternative: RuleFacts, facts: Facts) -> Template:
    """What would work instead of a refused send: `alternative`, a rule `decide()` found for a variant of it."""
    return fill(f"alternative:{_alternative_kind(alternative, facts.sender)}", _with_rule(facts, alternative))


def explain_write_again(facts: Facts) -> Template:
    """After a refusal nothing else lifts: the customer has to write first."""
    return fill("write_again", facts)


def explain_private_reply_already_sent() -> Template:
    """The store's refusal of a second private reply to one comment (the reason code is the key)."""
    return TEMPLATES["private_reply_already_sent"]


def fill(key: str, facts: Facts) -> Template:
    """The template `key` with its fields filled in each language."""
    es, en = TEMPLATES[key]
    return Template(es.format_map(_Fields(SPANISH, key, facts)), en.format_map(_Fields(ENGLISH, key, facts)))


def _variant(code: str, facts: Facts) -> str:
    """Two reasons read differently in one case: a private reply with no comment, a rule that starts later."""
    if code == "never_wrote" and facts.purpose in (Purpose.PRIVATE_REPLY, Purpose.PUBLIC_REPLY):
        return f"never_wrote:{Purpose(facts.purpose).value}"
    if code == "outside_window" and facts.elapsed is not None and facts.elapsed < _rule(facts).window_from:
        return "outside_window:too_early"
    return code


def _alternative_kind(alternative: RuleFacts, sender: SenderKind | None) -> str:
    if alternative.tag == "HUMAN_AGENT":
        return "human_agent"
    if alternative.messaging_type == "UTILITY":
        return "utility"
    if alternative.only_when_requested:
        return "on_request"
    if sender is not None and sender not in alternative.senders:
        return "person"
    return "untagged"


def _with_rule(facts: Facts, rule: RuleFacts) -> Facts:
    return Facts(facts.now, facts.tag, rule, facts.sender, facts.purpose, facts.last, facts.elapsed)


class _Fields:
    """The fields of one template in one language, worked out when the template names them."""

    def __init__(self, language: _Language, key: str, facts: Facts) -> None:
        self.language, self.key, self.facts = language, key, facts

    def __getitem__(self, name: str) -> object:
        return _FIELDS[name](self.language, self.key, self.facts)


def _rule(facts: Facts) -> RuleFacts:
    assert facts.rule is not None, "this sentence is about a rule"
    return facts.rule


def _last(facts: Facts) -> datetime:
    assert facts.last is not None, "this sentence is about the customer's last message"
    return facts.last


def _how(language: _Language, rule: RuleFacts) -> str:
    if rule.messaging_type == PUBLIC_COMMENT:
        return language.public_comment
    return language.tag.format(tag=rule.tag) if rule.tag else rule.messaging_type


def _window(key: str, facts: Facts) -> timedelta:
    """The window a sentence names. Without an upper limit it reads as the time since the customer wrote (a tag
    that was not needed), Meta's 24 hours (promotional content) or nothing."""
    rule = _rule(facts)
    if rule.window_to is not None:
        return rule.window_to
    if key == "tag_not_needed" and facts.elapsed is not None:
        return facts.elapsed
    if key == "promotional_outside_window":
        return timedelta(hours=24)
    return timedelta(0)


def _until(language: _Language, facts: Facts) -> str:
    """' hasta el 2 de diciembre, 14:05 UTC' for a window, ' antes del 27 de abril de 2026' for a retirement."""
    rule = _rule(facts)
    ends = rule.ends_at(_last(facts))
    if ends is None:
        return ""
    if rule.valid_until is not None and ends == rule.valid_until:
        return language.until_retirement.format(date=_when(language, ends, facts.now, with_time=False))
    return language.until_window_end.format(when=_when(language, ends, facts.now))


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _date(value: datetime | None) -> datetime:
    assert value is not None, "this sentence is about a rule's date"
    return value


_FIELDS: Mapping[str, Callable[[_Language, str, Facts], object]] = {
    "tag": lambda language, key, facts: facts.tag,
    "rule_tag": lambda language, key, facts: _rule(facts).tag,
    "known": lambda language, key, facts: ", ".join(sorted(MESSAGE_TAGS)),
    "messaging_type": lambda language, key, facts: _rule(facts).messaging_type,
    "how": lambda language, key, facts: _how(language, _rule(facts)),
    "How": lambda language, key, facts: _first_upper(_how(language, _rule(facts))),
    "sender": lambda language, key, facts: language.senders[SenderKind(facts.sender)],
    "purpose": lambda language, key, facts: language.purposes[Purpose(facts.purpose)],
    "kinds": lambda language, key, facts: language.or_.join(
        language.contents[kind] for kind in sorted(_rule(facts).content)
    ),
    "valid_from": lambda language, key, facts: _when(language, _date(_rule(facts).valid_from), facts.now),
    "valid_until": lambda language, key, facts: _when(
        language, _date(_rule(facts).valid_until), facts.now, with_time=False
    ),
    "window": lambda language, key, facts: _duration(language, _window(key, facts)),
    "window_from": lambda language, key, facts: _duration(language, _rule(facts).window_from),
    "last": lambda language, key, facts: _when(language, _last(facts), facts.now),
    "since": lambda language, key, facts: (
        language.since_comment
        if facts.purpose in (Purpose.PRIVATE_REPLY, Purpose.PUBLIC_REPLY)
        else language.since_message
    ),
    "until": lambda language, key, facts: _until(language, facts),
}


def _when(language: _Language, at: datetime, now: datetime, with_time: bool = True) -> str:
    """'25 de noviembre, 14:05 UTC'; the year when it is not `now`'s, and always for a date without a time."""
    text = language.day_month.format(day=at.day, month=language.months[at.month - 1])
    if at.year != now.year or not with_time:
        text += language.of_year.format(year=at.year)
    return text + (language.at_time.format(time=f"{at:%H:%M}") if with_time else "")


def _duration(language: _Language, value: timedelta) -> str:
    """Whole days from 2 days up ("7 días"), else hours ("24 horas", as Meta says it) and minutes."""
    minutes = int(value.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    if days >= 2 and not rest:
        return language.days.format(days=days)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} {language.hour}{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not parts:
        parts.append(f"{minutes} {language.minute}{'s' if minutes != 1 else ''}")
    return language.and_.join(parts)
