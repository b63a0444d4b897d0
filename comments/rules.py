"""Reply rules for comments ("Respuestas privadas"): which comments on which posts get a private reply, and which one.

Pure: the rule model, the matching and the validation of a rule as the console and the API send it. A page's rules
are tried in order (`position`); the first enabled rule that matches a comment wins (`first_match`).

Matching is forgiving the way customers write: `normalize` lowers the case, takes accents off, turns punctuation and
emoji into spaces and squeezes repeated letters, so "Precio?", "PRECIO!!", "precío", "preciooo" and "💰precio" all
read "precio". Keywords and phrases match whole words; a keyword word of 5 letters or more also matches a word one
typo away (one letter changed, added, dropped, or two neighbours swapped: "imformacion", "infromacion"). Short words
("info", "hola", "si") must be written exactly, or "caro" would answer "cara" and "mas" would answer "mes".

`parse_rule` checks a rule's body and raises `RuleInvalid(field, message_es)`: the field (`comments.keywords[2]`)
for programs, the words for the admin. A fixed reply is a Send API `message` (text with optional quick replies, or
a button template), checked as Meta would check it (`meta.validate.validate_send_request`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import DomainError, FieldInvalid
from meta.limits import (
    BUTTON_TEMPLATE_TEXT_MAX_CHARS,
    BUTTON_TITLE_MAX_CHARS,
    BUTTONS_MAX,
    PAYLOAD_MAX_CHARS,
    QUICK_REPLIES_MAX,
    QUICK_REPLY_CONTENT_TYPES,
    QUICK_REPLY_TITLE_MAX_CHARS,
    TEXT_MAX_CHARS,
)
from meta.validate import validate_send_request

POST_MODES = ("all", "ids", "text")
COMMENT_MODES = ("any", "keywords")
REPLY_MODES = ("fixed", "knowledge")

NAME_MAX_CHARS = 80
KEYWORDS_MAX = 50
KEYWORD_MAX_CHARS = 100
POST_IDS_MAX = 100
POST_WORDS_MAX = 20
PUBLIC_REPLIES_MAX = 10
PUBLIC_REPLY_MAX_CHARS = 1000
FUZZY_MIN_LETTERS = 5  # a keyword word this long tolerates one typo; shorter words must match exactly

PAGE_ID = re.compile(r"^[0-9]{1,30}$")
POST_ID = re.compile(r"^[0-9]{1,30}(_[0-9]{1,30})?$")  # Meta's "<page id>_<post id>", or the post's own id
MESSAGE_KEYS = frozenset({"text", "quick_replies", "attachment"})
# Keys the API sends back with a rule: accepted in a body (a client PUTs back what it read) and ignored.
READ_ONLY_KEYS = frozenset({"id", "position", "created_at", "updated_at", "updated_by"})
RULE_KEYS = frozenset({"page_id", "name", "enabled", "posts", "comments", "reply", "public_replies"}) | READ_ONLY_KEYS


class RuleError(DomainError):
    """Root of what the rules raise on purpose."""

    reason_code = "rule_error"


class RuleInvalid(RuleError, FieldInvalid):
    """A rule that cannot be saved: `field` names the part (`reply.message.text`), `message_es` says why."""

    reason_code = "rule_invalid"


# --- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostScope:
    """Which posts: every post, the posts with these ids, or the posts whose text holds one of `post_words`."""

    mode: str = "all"
    post_ids: tuple[str, ...] = ()
    post_words: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "post_ids": list(self.post_ids), "post_words": list(self.post_words)}


@dataclass(frozen=True)
class CommentMatch:
    """Which comments: every comment, or those holding one of the keywords or phrases."""

    mode: str = "any"
    keywords: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "keywords": list(self.keywords)}


@dataclass(frozen=True)
class ReplyContent:
    """What the private reply says: a fixed Send API `message`, or the knowledge matrix's answer to the comment."""

    mode: str = "fixed"
    message: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "message": dict(self.message) if self.message is not None else None}


@dataclass(frozen=True)
class ReplyRule:
    """One rule of a page. `id` 0: not stored yet (the store numbers rules). `position`: the order, lowest first."""

    page_id: str
    name: str
    posts: PostScope = field(default_factory=PostScope)
    comments: CommentMatch = field(default_factory=CommentMatch)
    reply: ReplyContent = field(default_factory=ReplyContent)
    public_replies: tuple[str, ...] = ()
    enabled: bool = True
    id: int = 0
    position: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "page_id": self.page_id,
            "name": self.name,
            "position": self.position,
            "enabled": self.enabled,
            "posts": self.posts.to_dict(),
            "comments": self.comments.to_dict(),
            "reply": self.reply.to_dict(),
            "public_replies": list(self.public_replies),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class PageCommentSettings:
    """A page's comment settings. `knowledge_min_score` None: the knowledge matrix's own answer threshold."""

    page_id: str
    one_reply_per_person_per_post_per_day: bool = True
    knowledge_min_score: float | None = None
    updated_at: datetime | None = None
    updated_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "one_reply_per_person_per_post_per_day": self.one_reply_per_person_per_post_per_day,
            "knowledge_min_score": self.knowledge_min_score,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }


# --- normalization and matching -------------------------------------------------------------------


_REPEATED_LETTER = re.compile(r"([^\W\d_])\1+")


def normalize(text: str) -> str:
    """Lower case, no accents, punctuation and emoji as spaces, repeated letters once, single spaces."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        kept.append(char if char.isalnum() else " ")
    squeezed = _REPEATED_LETTER.sub(r"\1", "".join(kept))
    return " ".join(squeezed.split())


def words_of(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def within_one_typo(a: str, b: str) -> bool:
    """`a` and `b` differ by at most one edit: a letter changed, added or dropped, or two neighbours swapped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        differences = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(differences) == 1:
            return True
        return (len(differences) == 2 and differences[1] == differences[0] + 1
                and a[differences[0]] == b[differences[1]] and a[differences[1]] == b[differences[0]])
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))


def word_matches(keyword_word: str, word: str) -> bool:
    """A keyword's word against a comment's word (both normalized): exact, or one typo for long keyword words."""
    if keyword_word == word:
        return True
    if keyword_word.isdigit() or len(keyword_word) < FUZZY_MIN_LETTERS or len(word) < FUZZY_MIN_LETTERS:
        return False
    return within_one_typo(keyword_word, word)


def phrase_in(phrase: Sequence[str], words: Sequence[str]) -> bool:
    """The phrase's words, in order and next to each other, somewhere in `words`."""
    size = len(phrase)
    if not size or size > len(words):
        return False
    return any(
        all(word_matches(phrase[j], words[start + j]) for j in range(size))
        for start in range(len(words) - size + 1)
    )


def contains_any(text: str, keywords: Iterable[str]) -> bool:
    """Whether `text` holds one of the keywords or phrases (accents, case, punctuation, emoji and typos aside)."""
    words = words_of(text)
    return any(phrase_in(words_of(keyword), words) for keyword in keywords)


def post_in_scope(scope: PostScope, post_id: str | None, post_text: str | None) -> bool:
    if scope.mode == "all":
        return True
    if scope.mode == "ids":
        return post_id is not None and _post_id_in(post_id, scope.post_ids)
    if scope.mode == "text":
        return post_text is not None and contains_any(post_text, scope.post_words)
    return False


def _post_id_in(post_id: str, chosen: Iterable[str]) -> bool:
    """Meta writes a post as "<page id>_<post id>"; an admin may paste either form."""
    own = post_id.rsplit("_", 1)[-1]
    return any(candidate == post_id or candidate.rsplit("_", 1)[-1] == own for candidate in chosen)


def comment_matches(match: CommentMatch, comment_text: str) -> bool:
    if match.mode == "any":
        return True
    if match.mode == "keywords":
        return contains_any(comment_text, match.keywords)
    return False


def matches(rule: ReplyRule, comment_text: str, post_id: str | None, post_text: str | None = None) -> bool:
    """Whether `rule` (enabled or not) applies to this comment on this post. A rule for posts by their text never
    matches a post whose text is unknown."""
    return post_in_scope(rule.posts, post_id, post_text) and comment_matches(rule.comments, comment_text)


def first_match(rules: Iterable[ReplyRule], comment_text: str, post_id: str | None,
                post_text: str | None = None) -> ReplyRule | None:
    """The first enabled rule, in position order, that matches the comment; None when none does."""
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if rule.enabled and matches(rule, comment_text, post_id, post_text):
            return rule
    return None


# --- validation -----------------------------------------------------------------------------------


def _object(value: Any, path: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleInvalid(path, f"{what} debe ser un objeto JSON.")
    return value


def _text(value: Any, path: str, what: str, most: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise RuleInvalid(path, f"{what} debe ser un texto.")
    text = value.strip()
    if required and not text:
        raise RuleInvalid(path, f"Escriba {what}.")
    if len(text) > most:
        raise RuleInvalid(path, f"{what[:1].upper()}{what[1:]} tiene {len(text)} caracteres; el máximo es {most}.")
    return text


def _list(value: Any, path: str, what: str, most: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuleInvalid(path, f"{what} debe ser una lista.")
    if len(value) > most:
        raise RuleInvalid(path, f"Hay {len(value)} {what}; el máximo es {most}.")
    return value


def _mode(value: Any, path: str, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise RuleInvalid(path, "El modo debe ser uno de: " + ", ".join(f"«{m}»" for m in allowed) + ".")
    return str(value)


def _unknown_keys(body: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(str(key) for key in body if key not in allowed)
    if unknown:
        where = f" en {path}" if path else ""
        key = unknown[0][:40]
        raise RuleInvalid(".".join(part for part in (path, key) if part) or "cuerpo",
                          f"Campo desconocido «{key}»{where}.")


def _words_list(value: Any, path: str, what: str, most: int) -> tuple[str, ...]:
    """Keywords or post words: each has letters or numbers once normalized; duplicates (as normalized) dropped."""
    seen: dict[str, str] = {}
    for index, item in enumerate(_list(value, path, what, most)):
        text = _text(item, f"{path}[{index}]", "la palabra clave", KEYWORD_MAX_CHARS)
        key = normalize(text)
        if not key:
            raise RuleInvalid(f"{path}[{index}]", f"«{text[:40]}» no tiene letras ni números: no coincidiría con "
                                                  "ningún comentario.")
        seen.setdefault(key, text)
    return tuple(seen.values())


def parse_posts(value: Any) -> PostScope:
    body = _object(value if value is not None else {}, "posts", "«posts»")
    _unknown_keys(body, frozenset({"mode", "post_ids", "post_words"}), "posts")
    mode = _mode(body.get("mode"), "posts.mode", POST_MODES, "all")
    if mode == "all":
        return PostScope("all")
    if mode == "ids":
        ids: list[str] = []
        for index, item in enumerate(_list(body.get("post_ids"), "posts.post_ids", "publicaciones", POST_IDS_MAX)):
            post_id = item if isinstance(item, str) else None
            if post_id is None or not POST_ID.match(post_id.strip()):
                raise RuleInvalid(f"posts.post_ids[{index}]", "Cada publicación es su id de Facebook: números, "
                                                              "o «idpágina_idpublicación».")
            if post_id.strip() not in ids:
                ids.append(post_id.strip())
        if not ids:
            raise RuleInvalid("posts.post_ids", "Indique al menos una publicación (su id de Facebook).")
        return PostScope("ids", post_ids=tuple(ids))
    post_words = _words_list(body.get("post_words"), "posts.post_words", "palabras de la publicación",
                             POST_WORDS_MAX)
    if not post_words:
        raise RuleInvalid("posts.post_words", "Indique al menos una palabra que deba tener el texto de la publicación.")
    return PostScope("text", post_words=post_words)


def parse_comments(value: Any) -> CommentMatch:
    body = _object(value if value is not None else {}, "comments", "«comments»")
    _unknown_keys(body, frozenset({"mode", "keywords"}), "comments")
    mode = _mode(body.get("mode"), "comments.mode", COMMENT_MODES, "any")
    if mode == "any":
        return CommentMatch("any")
    keywords = _words_list(body.get("keywords"), "comments.keywords", "palabras clave", KEYWORDS_MAX)
    if not keywords:
        raise RuleInvalid("comments.keywords", "Indique al menos una palabra clave o frase (por ejemplo «precio»).")
    return CommentMatch("keywords", keywords=keywords)


def parse_reply(value: Any) -> ReplyContent:
    body = _object(value, "reply", "«reply»") if value is not None else None
    if body is None:
        raise RuleInvalid("reply", "Indique qué mensaje privado se envía.")
    _unknown_keys(body, frozenset({"mode", "message"}), "reply")
    mode = _mode(body.get("mode"), "reply.mode", REPLY_MODES, "fixed")
    if mode == "knowledge":
        if body.get("message") is not None:
            raise RuleInvalid("reply.message", "Con la respuesta de la matriz de conocimientos no se escribe un "
                                               "mensaje fijo.")
        return ReplyContent("knowledge")
    return ReplyContent("fixed", parse_message(body.get("message")))


def parse_message(value: Any) -> dict[str, Any]:
    """A fixed private reply: `{"text", "quick_replies"?}` or a button template (`attachment`), as Meta takes it."""
    path = "reply.message"
    if value is None:
        raise RuleInvalid(path, "Escriba el mensaje privado.")
    message = _object(value, path, "El mensaje")
    _unknown_keys(message, MESSAGE_KEYS, path)
    if "attachment" in message and message.get("text") is not None:
        raise RuleInvalid(path, "El mensaje lleva texto o una plantilla de botones, no ambos.")
    if "attachment" in message:
        _check_button_template(message["attachment"])
    else:
        _text(message.get("text"), f"{path}.text", "el texto del mensaje", TEXT_MAX_CHARS)
        if isinstance(message.get("text"), str) and message["text"] != message["text"].strip():
            message = {**message, "text": message["text"].strip()}
    _check_quick_replies(message.get("quick_replies"))
    problem = validate_send_request({"recipient": {"comment_id": "0"}, "messaging_type": "RESPONSE",
                                     "message": message})
    if problem is not None:
        raise RuleInvalid(path, f"Meta no aceptaría este mensaje: {problem.message}")
    return _plain(message)


def _plain(value: Any) -> Any:
    """A JSON copy (lists and dicts of their own) so a stored rule never shares the request's objects."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_quick_replies(value: Any) -> None:
    path = "reply.message.quick_replies"
    for index, item in enumerate(_list(value, path, "respuestas rápidas", QUICK_REPLIES_MAX)):
        reply = _object(item, f"{path}[{index}]", "Cada respuesta rápida")
        content_type = reply.get("content_type", "text")
        if not isinstance(content_type, str) or content_type not in QUICK_REPLY_CONTENT_TYPES:
            raise RuleInvalid(f"{path}[{index}].content_type", "El tipo de una respuesta rápida es «text», "
                                                                "«user_phone_number» o «user_email».")
        if content_type == "text":
            _text(reply.get("title"), f"{path}[{index}].title", "el título de la respuesta rápida",
                  QUICK_REPLY_TITLE_MAX_CHARS)
            _payload(reply.get("payload"), f"{path}[{index}].payload")


def _payload(value: Any, path: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise RuleInvalid(path, "Cada botón o respuesta rápida necesita su «payload» (lo que el bot recibe al "
                                "tocarlo), por ejemplo «/greet».")
    if len(value) > PAYLOAD_MAX_CHARS:
        raise RuleInvalid(path, f"El payload tiene {len(value)} caracteres; el máximo es {PAYLOAD_MAX_CHARS}.")


def _check_button_template(value: Any) -> None:
    path = "reply.message.attachment"
    attachment = _object(value, path, "El adjunto")
    payload = attachment.get("payload")
    if attachment.get("type") != "template" or not isinstance(payload, Mapping) \
            or payload.get("template_type") != "button":
        raise RuleInvalid(path, "El único adjunto permitido es una plantilla de botones (template_type «button»).")
    _text(payload.get("text"), f"{path}.payload.text", "el texto de la plantilla", BUTTON_TEMPLATE_TEXT_MAX_CHARS)
    buttons = _list(payload.get("buttons"), f"{path}.payload.buttons", "botones", BUTTONS_MAX)
    if not buttons:
        raise RuleInvalid(f"{path}.payload.buttons", "La plantilla necesita de 1 a 3 botones.")
    for index, item in enumerate(buttons):
        where = f"{path}.payload.buttons[{index}]"
        button = _object(item, where, "Cada botón")
        _text(button.get("title"), f"{where}.title", "el título del botón", BUTTON_TITLE_MAX_CHARS)
        kind = button.get("type")
        if kind == "web_url":
            url = button.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
                raise RuleInvalid(f"{where}.url", "El botón de enlace necesita una dirección que empiece con "
                                                  "https:// o http://.")
        elif kind == "postback":
            _payload(button.get("payload"), f"{where}.payload")
        elif kind != "phone_number":
            raise RuleInvalid(f"{where}.type", "Cada botón es «web_url» (abre un enlace), «postback» (le escribe al "
                                               "bot) o «phone_number» (llama).")


def parse_public_replies(value: Any) -> tuple[str, ...]:
    replies: list[str] = []
    path = "public_replies"
    for index, item in enumerate(_list(value, path, "respuestas públicas", PUBLIC_REPLIES_MAX)):
        text = _text(item, f"{path}[{index}]", "la respuesta pública", PUBLIC_REPLY_MAX_CHARS)
        if text not in replies:
            replies.append(text)
    return tuple(replies)


def parse_page_id(value: Any, path: str = "page_id") -> str:
    if not isinstance(value, str) or not PAGE_ID.match(value):
        raise RuleInvalid(path, "Indique la página: su id de Facebook (solo números).")
    return value


def parse_rule(body: Any, *, page_id: str | None = None) -> ReplyRule:
    """A rule from the API's body (or the console's form). `page_id`, when given (an update), wins over the body's.
    Raises `RuleInvalid` with the first problem; never anything else for any JSON value."""
    rule = _object(body, "cuerpo", "La regla")
    try:
        _check_storable(rule, "")
    except RecursionError as exc:
        raise RuleInvalid("cuerpo", "La regla está anidada demasiado hondo.") from exc
    _unknown_keys(rule, RULE_KEYS, "")
    enabled = rule.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleInvalid("enabled", "«enabled» es true (activa) o false (apagada).")
    return ReplyRule(
        page_id=parse_page_id(page_id if page_id is not None else rule.get("page_id")),
        name=_text(rule.get("name"), "name", "el nombre de la regla", NAME_MAX_CHARS),
        posts=parse_posts(rule.get("posts")),
        comments=parse_comments(rule.get("comments")),
        reply=parse_reply(rule.get("reply")),
        public_replies=parse_public_replies(rule.get("public_replies")),
        enabled=enabled,
    )


def _check_storable(value: Any, path: str) -> None:
    """Text no database keeps alike: a NUL (PostgreSQL refuses it, SQLite keeps it) or a lone surrogate (JSON's
    "\\ud800", not UTF-8 for either) is refused where it is, like the page profile does."""
    if isinstance(value, str):
        if "\x00" in value or not _is_utf8(value):
            raise RuleInvalid(path or "cuerpo", "El texto tiene caracteres nulos o no válidos; escríbalo de nuevo.")
    elif isinstance(value, Mapping):
        for key, child in value.items():
            _check_storable(key, path or "cuerpo")
            _check_storable(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _check_storable(child, f"{path}[{index}]")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_settings(body: Any, page_id: str) -> PageCommentSettings:
    """A page's comment settings from the API's body."""
    settings = _object(body, "cuerpo", "La configuración")
    _unknown_keys(settings, frozenset({"page_id", "one_reply_per_person_per_post_per_day", "knowledge_min_score",
                                       "updated_at", "updated_by"}), "")
    once = settings.get("one_reply_per_person_per_post_per_day", True)
    if not isinstance(once, bool):
        raise RuleInvalid("one_reply_per_person_per_post_per_day", "Debe ser true o false.")
    score = settings.get("knowledge_min_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                              or not 0.0 <= float(score) <= 1.0):
        raise RuleInvalid("knowledge_min_score", "El puntaje mínimo es un número entre 0 y 1, o vacío para usar el "
                                                 "umbral de la matriz.")
    return PageCommentSettings(parse_page_id(page_id), once, float(score) if score is not None else None)
