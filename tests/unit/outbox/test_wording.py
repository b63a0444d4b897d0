"""The wording of sending decisions: a template in both languages for every reason code, fields that fill, and the
wording below the decisions (it never imports them)."""

from __future__ import annotations

import ast
import itertools
import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from meta.limits import MESSAGE_TAGS
from outbox.model import NewMessage, Purpose, SenderKind
from outbox.policy import REASON_CODES, REFUSAL_CODES, ContentKind, ConversationWindow, Policy, SendingRule, decide
from outbox.policy_file import load_policy
from outbox.wording import TEMPLATES, Facts, fill

UTC = timezone.utc
LAST = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
OUTBOX = Path(__file__).resolve().parents[3] / "outbox"


def test_every_reason_code_decide_returns_has_a_template_in_both_languages() -> None:
    assert {"allowed", "tag_not_needed"} | REFUSAL_CODES == REASON_CODES
    missing = sorted(REASON_CODES - set(TEMPLATES))
    assert not missing, f"reason codes without wording: {missing}"
    for code in REASON_CODES:
        es, en = TEMPLATES[code]
        assert es.strip() and en.strip() and es != en, code


def test_decide_returns_only_the_codes_it_declares() -> None:
    policy = load_policy()
    messages = [{"text": "x"}, {"template": {"name": "t"}}]
    seen = set()
    for sender, purpose, tag, promotional, message, hours, opt_in in itertools.product(
        SenderKind, Purpose, [None, "NOPE", *sorted(MESSAGE_TAGS)], [False, True], messages,
        [None, 0, 23, 25, 24 * 7 + 1], [False, True],
    ):  # fmt: skip
        request = NewMessage("1", "2", message, sender=sender, purpose=purpose, tag=tag, promotional=promotional)
        last = None if hours is None else LAST
        decision = decide(request, ConversationWindow(last, opt_in), LAST + timedelta(hours=hours or 0), policy)
        seen.add(decision.reason_code)
    assert seen <= REASON_CODES, sorted(seen - REASON_CODES)
    assert len(seen) >= 12  # the grid reaches most codes, so the check above means something


# A rule with every field set, and facts with everything known: every template must fill from them.
FULL_RULE = SendingRule(
    "FULL", "MESSAGE_TAG", "ACCOUNT_UPDATE", frozenset({SenderKind.BOT}), frozenset({Purpose.FOLLOW_UP}),
    timedelta(hours=1), timedelta(days=2), False, valid_from=datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
    valid_until=datetime(2027, 4, 27, tzinfo=UTC), content=frozenset(ContentKind),
)  # fmt: skip
FULL_FACTS = Facts(
    now=LAST + timedelta(hours=3), tag="ACCOUNT_UPDATE", rule=FULL_RULE, sender=SenderKind.SYSTEM,
    purpose=Purpose.FOLLOW_UP, last=LAST, elapsed=timedelta(hours=3),
)  # fmt: skip


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_fills_with_fields_the_wording_knows(key: str) -> None:
    es, en = fill(key, FULL_FACTS)
    assert "{" not in es + en and "}" not in es + en
    assert es.endswith(".") and en.endswith(".") and es != en
    for text in TEMPLATES[key]:  # every field is named in the same way in both languages
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field}
        assert fields == {field for _, field, _, _ in string.Formatter().parse(TEMPLATES[key].es) if field}


@pytest.mark.parametrize(
    ("window", "es", "en"),
    [
        (timedelta(minutes=1), "más de 1 minuto desde", "than 1 minute have"),
        (timedelta(minutes=90), "más de 1 hora y 30 minutos desde", "than 1 hour and 30 minutes have"),
        (timedelta(hours=1), "más de 1 hora desde", "than 1 hour have"),
        (timedelta(hours=36), "más de 36 horas desde", "than 36 hours have"),
        (timedelta(days=2), "más de 2 días desde", "than 2 days have"),
        (timedelta(days=2, minutes=1), "más de 48 horas y 1 minuto desde", "than 48 hours and 1 minute have"),
    ],
)
def test_durations_read_as_days_or_hours_and_minutes_in_both_languages(window: timedelta, es: str, en: str) -> None:
    messages = frozenset(Purpose) - {Purpose.PUBLIC_REPLY}  # a public reply is a comment, not a RESPONSE
    rule = SendingRule("SHORT", "RESPONSE", None, frozenset(SenderKind), messages, timedelta(0), window, True)
    request = NewMessage("1", "2", {"text": "x"}, sender=SenderKind.BOT, purpose=Purpose.REPLY)
    decision = decide(request, ConversationWindow(LAST), LAST + window + timedelta(seconds=1), Policy("t", (rule,)))

    assert decision.reason_code == "outside_window"
    assert es in decision.reason_es and en in decision.reason_en
    assert decision.reason_es.endswith("El cliente tiene que escribir de nuevo para reabrir la conversación.")
    assert decision.reason_en.endswith("The customer has to write again to reopen the conversation.")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_the_wording_sits_below_the_decisions() -> None:
    assert not _imported_modules(OUTBOX / "wording.py") & {"outbox.policy", "outbox.policy_file"}
    assert "outbox.wording" in _imported_modules(OUTBOX / "policy.py")


def test_the_policy_file_loader_sits_above_the_decisions() -> None:
    policy = _imported_modules(OUTBOX / "policy.py")

    assert "outbox.policy_file" not in policy and "yaml" not in policy, "the decisions read the file"
    assert "outbox.policy" in _imported_modules(OUTBOX / "policy_file.py")
