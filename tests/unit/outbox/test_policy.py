"""The sending policy: each rule and each refusal at its boundaries, the policy file, its overrides and errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.settings import SettingsError, load_settings
from meta.events import EventKind
from meta.limits import MESSAGE_TAGS
from outbox.model import NewMessage, OutboxInputError, Purpose, SenderKind
from outbox.policy import (
    REFUSAL_CODES,
    ContentKind,
    ConversationWindow,
    Decision,
    Policy,
    SendingRule,
    TimelineEvent,
    content_kind,
    decide,
    last_user_message_at,
)
from outbox.policy_file import DEFAULT_POLICY_FILE, RETIRED_TAGS, PolicyFileError, load_policy, parse_policy

UTC = timezone.utc
LAST = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)  # the customer's last message in most tests
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
RETIREMENT = datetime(2026, 4, 27, tzinfo=UTC)

BOT, HUMAN, SYSTEM = SenderKind.BOT, SenderKind.HUMAN, SenderKind.SYSTEM
REPLY, FOLLOW_UP, PRIVATE_REPLY = Purpose.REPLY, Purpose.FOLLOW_UP, Purpose.PRIVATE_REPLY

TEXT: Mapping[str, Any] = {"text": "Su pedido sale mañana."}
UTILITY_TEMPLATE: Mapping[str, Any] = {
    "template": {
        "name": "pedido_enviado",
        "language": {"code": "es"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "566701"}]}],
    }
}
FEEDBACK_TEMPLATE: Mapping[str, Any] = {
    "attachment": {
        "type": "template",
        "payload": {"template_type": "customer_feedback", "title": "¿Cómo le atendimos?", "feedback_screens": []},
    }
}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()  # the shipped file (the loader never reads the environment)


def send(
    sender: SenderKind = BOT,
    purpose: Purpose = FOLLOW_UP,
    tag: str | None = None,
    promotional: bool = False,
    message: Mapping[str, Any] = TEXT,
) -> NewMessage:
    return NewMessage(
        page_id="111", recipient_id="psid-1", message=message, sender=sender, purpose=purpose, tag=tag,
        promotional=promotional,
    )  # fmt: skip


def decide_after(
    policy: Policy,
    elapsed: timedelta,
    request: NewMessage,
    last: datetime | None = LAST,
    utility: bool = False,
) -> Decision:
    now = (last or LAST) + elapsed
    return decide(request, ConversationWindow(last, page_utility_opt_in=utility), now, policy)


# --- the shipped file ----------------------------------------------------------------------------------------


def test_the_shipped_policy_has_one_rule_per_way_of_sending_in_order(policy: Policy) -> None:
    assert policy.version == "2026-12-01"
    assert policy.source == str(DEFAULT_POLICY_FILE)
    assert [rule.name for rule in policy.rules] == [
        "RESPONSE",
        "UPDATE",
        "PRIVATE_REPLY",
        "PUBLIC_REPLY",
        "HUMAN_AGENT",
        "CUSTOMER_FEEDBACK",
        "UTILITY",
        "CONFIRMED_EVENT_UPDATE",
        "POST_PURCHASE_UPDATE",
        "ACCOUNT_UPDATE",
    ]


def test_the_shipped_rules_say_what_the_issue_asks(policy: Policy) -> None:
    response, update = policy.rule("RESPONSE"), policy.rule("UPDATE")
    assert (response.messaging_type, response.tag, response.purposes) == ("RESPONSE", None, {REPLY})
    assert (update.messaging_type, update.tag, update.purposes) == ("UPDATE", None, {FOLLOW_UP})
    for rule in (response, update):
        assert rule.senders == {BOT, HUMAN, SYSTEM}
        assert (rule.window_from, rule.window_to, rule.promotional_allowed) == (timedelta(0), 24 * HOUR, True)

    human = policy.rule("HUMAN_AGENT")
    assert (human.messaging_type, human.tag, human.senders) == ("MESSAGE_TAG", "HUMAN_AGENT", {HUMAN})
    assert (human.window_from, human.window_to, human.promotional_allowed) == (24 * HOUR, 7 * DAY, False)

    for tag in RETIRED_TAGS:
        rule = policy.rule(tag)
        assert (rule.messaging_type, rule.tag, rule.senders) == ("MESSAGE_TAG", tag, {BOT, SYSTEM})
        assert (rule.window_from, rule.window_to, rule.promotional_allowed) == (24 * HOUR, None, False)
        assert rule.valid_until == RETIREMENT and rule.only_when_requested

    utility = policy.rule("UTILITY")
    assert (utility.messaging_type, utility.tag, utility.requires_page_opt_in) == ("UTILITY", None, True)
    assert utility.senders == {BOT, SYSTEM} and not utility.promotional_allowed
    assert utility.content == {ContentKind.UTILITY_TEMPLATE}

    feedback = policy.rule("CUSTOMER_FEEDBACK")
    assert feedback.content == {ContentKind.CUSTOMER_FEEDBACK_TEMPLATE} and feedback.window_to == 7 * DAY

    private = policy.rule("PRIVATE_REPLY")
    assert (private.messaging_type, private.purposes, private.window_to) == ("RESPONSE", {PRIVATE_REPLY}, 7 * DAY)

    public = policy.rule("PUBLIC_REPLY")
    assert (public.messaging_type, public.purposes, public.tag) == ("COMMENT", {Purpose.PUBLIC_REPLY}, None)
    assert (public.window_from, public.window_to, public.content) == (timedelta(0), None, {ContentKind.STANDARD})


def test_no_shipped_rule_tags_promotional_content_or_lets_a_bot_use_human_agent(policy: Policy) -> None:
    for rule in policy.rules:
        assert (rule.messaging_type == "MESSAGE_TAG") == (rule.tag is not None)
        if rule.tag is not None:
            assert rule.tag in MESSAGE_TAGS
            assert not rule.promotional_allowed
        if rule.tag == "HUMAN_AGENT":
            assert rule.senders == {HUMAN}


# --- the standard window -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [(REPLY, "RESPONSE"), (FOLLOW_UP, "UPDATE")],
)
@pytest.mark.parametrize("sender", [BOT, HUMAN, SYSTEM])
@pytest.mark.parametrize("elapsed", [timedelta(0), HOUR, 24 * HOUR])
def test_inside_24_hours_anything_goes_as_response_or_update(
    policy: Policy, sender: SenderKind, purpose: Purpose, expected: str, elapsed: timedelta
) -> None:
    for promotional in (False, True):
        decision = decide_after(policy, elapsed, send(sender, purpose, promotional=promotional))
        assert decision.allowed, decision.reason_en
        assert (decision.messaging_type, decision.tag, decision.rule) == (expected, None, expected)
        assert decision.reason_code == "allowed"
        assert decision.window_ends_at == LAST + 24 * HOUR
        assert decision.send_fields() == {"messaging_type": expected}


@pytest.mark.parametrize("purpose", [REPLY, FOLLOW_UP])
def test_a_second_after_24_hours_the_bot_is_refused_and_told_a_person_can_still_answer(
    policy: Policy, purpose: Purpose
) -> None:
    decision = decide_after(policy, 24 * HOUR + SECOND, send(BOT, purpose))

    assert not decision.allowed
    assert decision.reason_code == "outside_window"
    assert decision.messaging_type is None and decision.tag is None
    assert decision.alternative == "HUMAN_AGENT"
    assert decision.alternative_until == LAST + 7 * DAY
    assert "Han pasado más de 24 horas desde el último mensaje del cliente" in decision.reason_es
    assert "Un agente aún puede responder con la etiqueta HUMAN_AGENT hasta el 2 de diciembre, 14:05 UTC." in (
        decision.reason_es
    )
    assert "More than 24 hours have passed" in decision.reason_en
    assert "HUMAN_AGENT tag until December 2, 14:05 UTC" in decision.reason_en


def test_a_user_message_stamped_in_the_future_counts_as_just_now(policy: Policy) -> None:
    decision = decide(send(BOT, REPLY), ConversationWindow(LAST), LAST - 5 * SECOND, policy)
    assert decision.allowed and decision.messaging_type == "RESPONSE"


def test_refused_without_any_alternative_the_customer_must_write_again(policy: Policy) -> None:
    decision = decide_after(policy, 8 * DAY, send(BOT, REPLY))
    assert (decision.allowed, decision.reason_code, decision.alternative) == (False, "outside_window", None)
    assert "El cliente tiene que escribir de nuevo" in decision.reason_es
    assert "The customer has to write again" in decision.reason_en


# --- HUMAN_AGENT ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elapsed", [24 * HOUR + SECOND, 3 * DAY, 7 * DAY])
@pytest.mark.parametrize("purpose", [REPLY, FOLLOW_UP])
def test_a_person_answers_with_human_agent_from_24_hours_to_7_days(
    policy: Policy, elapsed: timedelta, purpose: Purpose
) -> None:
    decision = decide_after(policy, elapsed, send(HUMAN, purpose))

    assert decision.allowed, decision.reason_en
    assert (decision.messaging_type, decision.tag, decision.rule) == ("MESSAGE_TAG", "HUMAN_AGENT", "HUMAN_AGENT")
    assert decision.window_ends_at == LAST + 7 * DAY
    assert decision.send_fields() == {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert "2 de diciembre, 14:05 UTC" in decision.reason_es


def test_a_person_inside_24_hours_gets_response_even_with_human_agent_requested(policy: Policy) -> None:
    decision = decide_after(policy, 2 * HOUR, send(HUMAN, REPLY, tag="HUMAN_AGENT"))

    assert decision.allowed
    assert (decision.messaging_type, decision.tag, decision.rule) == ("RESPONSE", None, "RESPONSE")
    assert decision.reason_code == "tag_not_needed"
    assert "sin la etiqueta HUMAN_AGENT" in decision.reason_es
    assert "without the HUMAN_AGENT tag" in decision.reason_en


def test_exactly_24_hours_with_human_agent_requested_uses_the_tag(policy: Policy) -> None:
    decision = decide_after(policy, 24 * HOUR, send(HUMAN, REPLY, tag="HUMAN_AGENT"))
    assert (decision.allowed, decision.tag) == (True, "HUMAN_AGENT")


@pytest.mark.parametrize("tag", [None, "HUMAN_AGENT"])
def test_a_second_after_7_days_not_even_a_person_can_answer(policy: Policy, tag: str | None) -> None:
    decision = decide_after(policy, 7 * DAY + SECOND, send(HUMAN, REPLY, tag=tag))

    assert not decision.allowed
    assert decision.reason_code == "human_agent_window_expired"
    assert "más de 7 días" in decision.reason_es and "25 de noviembre, 14:05 UTC" in decision.reason_es
    assert "More than 7 days" in decision.reason_en and "November 25, 14:05 UTC" in decision.reason_en


@pytest.mark.parametrize("sender", [BOT, SYSTEM])
@pytest.mark.parametrize("elapsed", [2 * HOUR, 30 * HOUR, 3 * DAY])
def test_the_bot_never_gets_human_agent_even_when_it_asks(
    policy: Policy, sender: SenderKind, elapsed: timedelta
) -> None:
    decision = decide_after(policy, elapsed, send(sender, FOLLOW_UP, tag="HUMAN_AGENT"))

    assert not decision.allowed
    assert decision.reason_code == "human_agent_bot_sender"
    assert "solo para mensajes escritos por una persona" in decision.reason_es
    assert "only for messages written by a person" in decision.reason_en
    if elapsed <= 24 * HOUR:
        assert decision.alternative == "UPDATE"  # the same message without the tag would go
    else:
        assert decision.alternative == "HUMAN_AGENT"  # a person could still answer


def test_a_promotional_message_from_a_person_after_24_hours_is_refused(policy: Policy) -> None:
    decision = decide_after(policy, 30 * HOUR, send(HUMAN, FOLLOW_UP, promotional=True))
    assert (decision.allowed, decision.reason_code) == (False, "promotional_outside_window")
    assert "promocional" in decision.reason_es and "24 horas" in decision.reason_es
    assert "Promotional" in decision.reason_en


# --- retired tags --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(RETIRED_TAGS))
def test_retired_tags_work_until_the_day_before_their_retirement(policy: Policy, tag: str) -> None:
    now = RETIREMENT - SECOND
    decision = decide(send(BOT, FOLLOW_UP, tag=tag), ConversationWindow(now - 30 * DAY), now, policy)

    assert decision.allowed, decision.reason_en
    assert (decision.messaging_type, decision.tag, decision.rule) == ("MESSAGE_TAG", tag, tag)
    assert decision.window_ends_at == RETIREMENT
    assert "antes del 27 de abril de 2026" in decision.reason_es
    assert "before April 27, 2026" in decision.reason_en


@pytest.mark.parametrize("tag", sorted(RETIRED_TAGS))
@pytest.mark.parametrize("after", [timedelta(0), SECOND, 200 * DAY])
def test_retired_tags_are_refused_from_their_retirement_on(policy: Policy, tag: str, after: timedelta) -> None:
    now = RETIREMENT + after
    decision = decide(send(SYSTEM, FOLLOW_UP, tag=tag), ConversationWindow(now - 2 * DAY), now, policy)

    assert not decision.allowed
    assert decision.reason_code == "tag_retired"
    assert f"Meta retiró la etiqueta {tag} el 27 de abril de 2026" in decision.reason_es
    assert f"Meta retired the {tag} tag on April 27, 2026" in decision.reason_en


def test_retired_tags_are_never_picked_without_being_asked_for(policy: Policy) -> None:
    now = RETIREMENT - 10 * DAY
    decision = decide(send(BOT, FOLLOW_UP), ConversationWindow(now - 2 * DAY), now, policy)

    assert not decision.allowed and decision.tag is None
    assert decision.reason_code == "outside_window"


def test_a_retired_tag_requested_inside_the_window_before_retirement_is_not_needed(policy: Policy) -> None:
    now = RETIREMENT - 10 * DAY
    decision = decide(send(BOT, FOLLOW_UP, tag="ACCOUNT_UPDATE"), ConversationWindow(now - HOUR), now, policy)
    assert (decision.allowed, decision.reason_code, decision.messaging_type) == (True, "tag_not_needed", "UPDATE")


def test_a_person_cannot_use_the_retired_update_tags(policy: Policy) -> None:
    now = RETIREMENT - 10 * DAY
    decision = decide(
        send(HUMAN, FOLLOW_UP, tag="POST_PURCHASE_UPDATE"), ConversationWindow(now - 2 * DAY), now, policy
    )
    assert (decision.allowed, decision.reason_code) == (False, "sender_not_allowed")


# --- promotional content, unknown tags, people who never wrote -----------------------------------------------


@pytest.mark.parametrize("tag", sorted(MESSAGE_TAGS))
@pytest.mark.parametrize("elapsed", [HOUR, 30 * HOUR])
def test_promotional_content_is_never_tagged(policy: Policy, tag: str, elapsed: timedelta) -> None:
    decision = decide_after(policy, elapsed, send(HUMAN, FOLLOW_UP, tag=tag, promotional=True))

    assert not decision.allowed
    assert decision.reason_code == "promotional_with_tag"
    assert "nunca se puede enviar con una etiqueta" in decision.reason_es
    assert "can never be sent with a message tag" in decision.reason_en


@pytest.mark.parametrize("sender", [BOT, SYSTEM])
def test_promotional_content_after_24_hours_is_refused(policy: Policy, sender: SenderKind) -> None:
    decision = decide_after(policy, 24 * HOUR + SECOND, send(sender, FOLLOW_UP, promotional=True))
    assert (decision.allowed, decision.reason_code, decision.alternative) == (False, "promotional_outside_window", None)


@pytest.mark.parametrize("tag", ["FOO", "human_agent", "UTILITY", "", "SHIPPING_UPDATE"])
def test_an_unknown_tag_is_refused_and_the_known_ones_listed(policy: Policy, tag: str) -> None:
    decision = decide_after(policy, HOUR, send(HUMAN, REPLY, tag=tag))

    assert (decision.allowed, decision.reason_code) == (False, "unknown_tag")
    assert "HUMAN_AGENT" in decision.reason_es and "HUMAN_AGENT" in decision.reason_en


def test_a_known_tag_missing_from_the_deployments_policy_is_refused(policy: Policy) -> None:
    without_human_agent = Policy("test", tuple(rule for rule in policy.rules if rule.tag != "HUMAN_AGENT"))
    decision = decide_after(without_human_agent, 30 * HOUR, send(HUMAN, REPLY, tag="HUMAN_AGENT"))
    assert (decision.allowed, decision.reason_code) == (False, "tag_not_in_policy")


@pytest.mark.parametrize("sender", [BOT, HUMAN, SYSTEM])
@pytest.mark.parametrize("purpose", list(Purpose))
def test_nobody_writes_to_someone_who_never_wrote(policy: Policy, sender: SenderKind, purpose: Purpose) -> None:
    decision = decide_after(policy, HOUR, send(sender, purpose), last=None)
    assert (decision.allowed, decision.reason_code) == (False, "never_wrote")
    assert decision.reason_es and decision.reason_en


# --- utility templates, the feedback survey, private replies -------------------------------------------------


@pytest.mark.parametrize("elapsed", [HOUR, 24 * HOUR + SECOND, 90 * DAY])
def test_a_utility_template_goes_as_utility_on_pages_that_opted_in(policy: Policy, elapsed: timedelta) -> None:
    decision = decide_after(policy, elapsed, send(BOT, FOLLOW_UP, message=UTILITY_TEMPLATE), utility=True)

    assert decision.allowed, decision.reason_en
    assert (decision.messaging_type, decision.tag, decision.rule) == ("UTILITY", None, "UTILITY")
    assert decision.window_ends_at is None
    assert decision.send_fields() == {"messaging_type": "UTILITY"}


def test_a_utility_template_is_refused_where_the_page_did_not_opt_in(policy: Policy) -> None:
    decision = decide_after(policy, 30 * HOUR, send(BOT, FOLLOW_UP, message=UTILITY_TEMPLATE), utility=False)

    assert (decision.allowed, decision.reason_code) == (False, "utility_not_enabled")
    assert "plantillas de utilidad" in decision.reason_es and "Utility templates" in decision.reason_en


def test_an_outside_window_refusal_mentions_utility_templates_where_enabled(policy: Policy) -> None:
    decision = decide_after(policy, 8 * DAY, send(BOT, FOLLOW_UP), utility=True)
    assert (decision.reason_code, decision.alternative) == ("outside_window", "UTILITY")
    assert "plantilla de utilidad aprobada (UTILITY)" in decision.reason_es


def test_utility_templates_are_neither_replies_nor_from_people(policy: Policy) -> None:
    as_reply = decide_after(policy, 30 * HOUR, send(BOT, REPLY, message=UTILITY_TEMPLATE), utility=True)
    from_person = decide_after(policy, 30 * HOUR, send(HUMAN, FOLLOW_UP, message=UTILITY_TEMPLATE), utility=True)
    promotional = decide_after(
        policy, 30 * HOUR, send(BOT, FOLLOW_UP, promotional=True, message=UTILITY_TEMPLATE), utility=True
    )

    assert (as_reply.allowed, as_reply.reason_code) == (False, "purpose_not_allowed")
    assert (from_person.allowed, from_person.reason_code) == (False, "sender_not_allowed")
    assert (promotional.allowed, promotional.reason_code) == (False, "promotional_outside_window")


@pytest.mark.parametrize(
    ("elapsed", "messaging_type", "tag"),
    [
        (HOUR, "UPDATE", None),
        (24 * HOUR + SECOND, "MESSAGE_TAG", "CUSTOMER_FEEDBACK"),
        (7 * DAY, "MESSAGE_TAG", "CUSTOMER_FEEDBACK"),
    ],
)
def test_the_feedback_survey_uses_customer_feedback_only_outside_24_hours(
    policy: Policy, elapsed: timedelta, messaging_type: str, tag: str | None
) -> None:
    decision = decide_after(policy, elapsed, send(BOT, FOLLOW_UP, message=FEEDBACK_TEMPLATE))
    assert (decision.allowed, decision.messaging_type, decision.tag) == (True, messaging_type, tag)


def test_the_feedback_survey_after_7_days_is_refused(policy: Policy) -> None:
    decision = decide_after(policy, 7 * DAY + SECOND, send(BOT, FOLLOW_UP, message=FEEDBACK_TEMPLATE))
    assert (decision.allowed, decision.reason_code) == (False, "outside_window")
    assert "7 días" in decision.reason_es


def test_customer_feedback_on_anything_but_the_survey_template_is_refused(policy: Policy) -> None:
    decision = decide_after(policy, 30 * HOUR, send(BOT, FOLLOW_UP, tag="CUSTOMER_FEEDBACK"))
    assert (decision.allowed, decision.reason_code) == (False, "content_not_allowed")
    assert "plantilla de encuesta" in decision.reason_es


@pytest.mark.parametrize("elapsed", [timedelta(0), 3 * DAY, 7 * DAY])
@pytest.mark.parametrize("sender", [BOT, HUMAN])
def test_a_private_reply_goes_within_7_days_of_the_comment(
    policy: Policy, elapsed: timedelta, sender: SenderKind
) -> None:
    decision = decide_after(policy, elapsed, send(sender, PRIVATE_REPLY))
    assert (decision.allowed, decision.messaging_type, decision.tag) == (True, "RESPONSE", None)
    assert (decision.rule, decision.window_ends_at) == ("PRIVATE_REPLY", LAST + 7 * DAY)


def test_a_private_reply_a_second_after_7_days_is_refused(policy: Policy) -> None:
    decision = decide_after(policy, 7 * DAY + SECOND, send(BOT, PRIVATE_REPLY))

    assert (decision.allowed, decision.reason_code, decision.alternative) == (False, "outside_window", None)
    assert "desde el comentario del cliente" in decision.reason_es
    assert "since the customer's comment" in decision.reason_en


@pytest.mark.parametrize("elapsed", [timedelta(0), 8 * DAY, 400 * DAY])
def test_a_public_reply_is_a_comment_with_no_messaging_window(policy: Policy, elapsed: timedelta) -> None:
    decision = decide_after(policy, elapsed, send(BOT, Purpose.PUBLIC_REPLY, promotional=True))

    assert (decision.allowed, decision.messaging_type, decision.tag) == (True, "COMMENT", None)
    assert (decision.rule, decision.window_ends_at) == ("PUBLIC_REPLY", None)
    assert "respuesta pública bajo el comentario" in decision.reason_es


def test_a_public_reply_needs_the_comment_on_record_and_takes_no_tag(policy: Policy) -> None:
    unknown = decide_after(policy, HOUR, send(BOT, Purpose.PUBLIC_REPLY), last=None)
    tagged = decide_after(policy, 30 * HOUR, send(HUMAN, Purpose.PUBLIC_REPLY, tag="HUMAN_AGENT"))

    assert (unknown.allowed, unknown.reason_code) == (False, "never_wrote")
    assert "responder públicamente" in unknown.reason_es and "reply to publicly" in unknown.reason_en
    assert (tagged.allowed, tagged.reason_code, tagged.alternative) == (False, "purpose_not_allowed", None)


@pytest.mark.parametrize("purpose", [REPLY, FOLLOW_UP, PRIVATE_REPLY])
def test_no_messenger_message_ever_goes_as_a_comment(policy: Policy, purpose: Purpose) -> None:
    for elapsed in (HOUR, 3 * DAY, 90 * DAY):
        decision = decide_after(policy, elapsed, send(BOT, purpose))
        assert decision.messaging_type != "COMMENT" and decision.rule != "PUBLIC_REPLY"


# --- rules limited in time (custom policies) -----------------------------------------------------------------


def _timed_policy(valid_from: datetime | None, valid_until: datetime | None) -> Policy:
    return parse_policy(
        {
            "version": "test",
            "rules": [
                {
                    "name": "TRIAL_UPDATE",
                    "messaging_type": "UPDATE",
                    "tag": None,
                    "senders": ["bot"],
                    "purposes": ["follow_up"],
                    "window_from": 0,
                    "window_to": "24h",
                    "promotional_allowed": True,
                    "valid_from": valid_from,
                    "valid_until": valid_until,
                }
            ],
        }
    )


def test_a_rule_is_refused_before_its_valid_from_and_allowed_from_it() -> None:
    timed = _timed_policy(LAST + HOUR, None)

    before = decide_after(timed, HOUR - SECOND, send(BOT, FOLLOW_UP))
    at = decide_after(timed, HOUR, send(BOT, FOLLOW_UP))

    assert (before.allowed, before.reason_code) == (False, "rule_not_yet_valid")
    assert "25 de noviembre, 15:05 UTC" in before.reason_es and "November 25, 15:05 UTC" in before.reason_en
    assert at.allowed


def test_a_rule_without_a_tag_past_its_valid_until_is_expired() -> None:
    decision = decide_after(_timed_policy(None, LAST + HOUR), HOUR, send(BOT, FOLLOW_UP))
    assert (decision.allowed, decision.reason_code) == (False, "rule_expired")
    assert "25 de noviembre de 2026" in decision.reason_es


# --- overrides -----------------------------------------------------------------------------------------------


def policy_from(env: dict[str, str]) -> Policy:
    """The policy as a process opens it: the settings read the environment, the loader gets their values."""
    settings = load_settings(env)
    return load_policy(settings.outbox_policy_file, retired_tags_until=settings.outbox_retired_tags_until)


def test_the_retirement_date_moves_with_the_environment() -> None:
    stricter = policy_from({"OUTBOX_RETIRED_TAGS_UNTIL": "2026-02-10"})
    now = datetime(2026, 3, 1, tzinfo=UTC)
    decision = decide(send(BOT, FOLLOW_UP, tag="ACCOUNT_UPDATE"), ConversationWindow(now - 2 * DAY), now, stricter)

    assert {stricter.rule(tag).valid_until for tag in RETIRED_TAGS} == {datetime(2026, 2, 10, tzinfo=UTC)}
    assert (decision.allowed, decision.reason_code) == (False, "tag_retired")
    assert "10 de febrero de 2026" in decision.reason_es and "February 10, 2026" in decision.reason_en
    assert stricter.rule("HUMAN_AGENT").valid_until is None  # only the three retired tags move


def test_a_later_retirement_date_keeps_the_tags_usable() -> None:
    later = policy_from({"OUTBOX_RETIRED_TAGS_UNTIL": "2027-01-01"})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    decision = decide(send(BOT, FOLLOW_UP, tag="CONFIRMED_EVENT_UPDATE"), ConversationWindow(now - 2 * DAY), now, later)
    assert (decision.allowed, decision.tag) == (True, "CONFIRMED_EVENT_UPDATE")


@pytest.mark.parametrize("value", ["27/04/2026", "2026-13-01", "mañana", "2026-04-27T10:00:00"])
def test_a_bad_retirement_date_in_the_environment_is_a_clear_error(value: str) -> None:
    with pytest.raises(SettingsError, match="OUTBOX_RETIRED_TAGS_UNTIL"):
        policy_from({"OUTBOX_RETIRED_TAGS_UNTIL": value})


MINIMAL = """
version: "deployment-7"
rules:
  - name: ONLY_REPLIES
    messaging_type: RESPONSE
    tag: null
    senders: [bot]
    purposes: [reply]
    window_from: 0
    window_to: 12h
    promotional_allowed: false
"""


def test_the_policy_file_comes_from_the_environment(tmp_path: Path) -> None:
    custom = tmp_path / "policy.yml"
    custom.write_text(MINIMAL, encoding="utf-8")

    loaded = policy_from({"OUTBOX_POLICY_FILE": str(custom)})

    assert (loaded.version, loaded.source, [rule.name for rule in loaded.rules]) == (
        "deployment-7",
        str(custom),
        ["ONLY_REPLIES"],
    )
    assert not decide_after(loaded, 13 * HOUR, send(BOT, REPLY)).allowed
    assert decide_after(loaded, 12 * HOUR, send(BOT, REPLY)).allowed


def test_the_loader_never_reads_the_environment_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are read once, by core/settings.py: a variable set after the start changes nothing here."""
    custom = tmp_path / "policy.yml"
    custom.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv("OUTBOX_POLICY_FILE", str(custom))
    monkeypatch.setenv("OUTBOX_RETIRED_TAGS_UNTIL", "2027-01-01")
    loaded = load_policy()
    assert (loaded.version, loaded.source) == ("2026-12-01", str(DEFAULT_POLICY_FILE))
    assert policy_from({}).rule("ACCOUNT_UPDATE").valid_until == loaded.rule("ACCOUNT_UPDATE").valid_until


def test_times_with_a_z_zone_load_on_python_3_10_too(tmp_path: Path) -> None:
    custom = tmp_path / "policy.yml"
    custom.write_text(MINIMAL + '    valid_until: "2026-04-27T05:00:00Z"\n', encoding="utf-8")
    rule = load_policy(custom).rule("ONLY_REPLIES")
    assert rule.valid_until == datetime(2026, 4, 27, 5, tzinfo=UTC)


# --- malformed files -----------------------------------------------------------------------------------------

RULE = {
    "name": "X",
    "messaging_type": "RESPONSE",
    "tag": None,
    "senders": ["bot"],
    "purposes": ["reply"],
    "window_from": 0,
    "window_to": "24h",
    "promotional_allowed": False,
}


def rule_with(**changes: Any) -> dict[str, Any]:
    rule = {**RULE, **changes}
    return {key: value for key, value in rule.items() if value != "<drop>"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (rule_with(messaging_type="MESSAGE_TAG", tag="SHIPPING_UPDATE"), "unknown tag 'SHIPPING_UPDATE'"),
        (rule_with(window_from="2d", window_to="24h"), "window_from .* is after window_to"),
        (rule_with(valid_until=datetime(2026, 4, 27, 10)), "naive datetime"),
        (rule_with(valid_until="2026-04-27T10:00:00"), "naive datetime"),
        (rule_with(valid_from="2026-05-01", valid_until="2026-04-27"), "valid_from must be before valid_until"),
        (rule_with(senders=["bot", "robot"]), "senders: unknown value 'robot'"),
        (rule_with(senders=[]), "senders must be a non-empty list"),
        (rule_with(senders="bot"), "senders must be a non-empty list"),
        (rule_with(purposes=["broadcast"]), "purposes: unknown value 'broadcast'"),
        (rule_with(content=["carousel"]), "content: unknown value 'carousel'"),
        (rule_with(valid_untill="2026-04-27"), "unknown fields: valid_untill"),
        (rule_with(window_to="<drop>"), "missing fields: window_to"),
        (rule_with(messaging_type="MESSAGE_TAG"), "MESSAGE_TAG needs a tag"),
        (rule_with(tag="HUMAN_AGENT"), "a tag goes with messaging_type MESSAGE_TAG"),
        (rule_with(messaging_type="NON_PROMOTIONAL_SUBSCRIPTION"), "messaging_type 'NON_PROMOTIONAL_SUBSCRIPTION'"),
        (
            rule_with(messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE", promotional_allowed=True),
            "promotional content with message tags",
        ),
        (rule_with(messaging_type="UTILITY", promotional_allowed=True), "must not contain marketing"),
        (rule_with(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT", senders=["human", "bot"]), "people only"),
        (rule_with(only_when_requested=True), "only_when_requested needs a tag"),
        (rule_with(window_to="24"), "'24' is not a duration"),
        (rule_with(window_from="-1h"), "'-1h' is not a duration"),
        (rule_with(window_to=24), "24 is not a duration"),
        (rule_with(promotional_allowed="no"), "promotional_allowed must be true or false"),
        (rule_with(requires_page_opt_in=1), "requires_page_opt_in must be true or false"),
        (rule_with(valid_from="soon"), "valid_from: 'soon' is not a date"),
        (rule_with(name=""), "name must be a non-empty string"),
        (rule_with(messaging_type="COMMENT"), "COMMENT is for public replies only"),
        (rule_with(purposes=["public_reply"]), "public replies .* go with messaging_type COMMENT"),
        (rule_with(messaging_type="COMMENT", purposes=["public_reply", "reply"]), "a comment is not a Messenger"),
        ("RESPONSE", "a rule must be a mapping"),
    ],
)
def test_a_malformed_rule_is_a_clear_error_naming_the_rule(rule: Any, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message) as raised:
        parse_policy({"version": 1, "rules": [RULE, rule]}, source="deploy.yml")
    assert str(raised.value).startswith("deploy.yml: rule 2")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([RULE], "must be a mapping with `version` and `rules`"),
        ({"rules": [RULE]}, "`version` is required"),
        ({"version": True, "rules": [RULE]}, "`version` is required"),
        ({"version": 1, "rules": []}, "`rules` must be a non-empty list"),
        ({"version": 1}, "`rules` must be a non-empty list"),
        ({"version": 1, "rules": [RULE], "defaults": {}}, "unknown top-level keys: defaults"),
        ({"version": 1, "rules": [RULE, RULE]}, "rule names must be unique: X"),
    ],
)
def test_a_malformed_policy_is_a_clear_error(data: Any, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message):
        parse_policy(data, source="deploy.yml")


def test_a_file_that_is_not_yaml_or_not_there_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("version: 1\nrules: [\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match="broken.yml: not valid YAML"):
        load_policy(broken)
    with pytest.raises(PolicyFileError, match="missing.yml: cannot read the policy file"):
        load_policy(tmp_path / "missing.yml")


def test_policy_file_errors_belong_to_the_outbox_errors() -> None:
    from outbox.model import OutboxError

    assert issubclass(PolicyFileError, OutboxError)


# --- times must be aware -------------------------------------------------------------------------------------


def test_naive_times_are_refused_everywhere(policy: Policy) -> None:
    naive = datetime(2026, 11, 25, 14, 5)
    with pytest.raises(ValueError, match="now"):
        decide(send(), ConversationWindow(LAST), naive, policy)
    with pytest.raises(ValueError, match="last_user_message_at"):
        ConversationWindow(naive)
    with pytest.raises(ValueError, match="event time"):
        last_user_message_at([TimelineEvent("message", "111", naive)], "111")
    with pytest.raises(ValueError, match="valid_until"):
        SendingRule(
            "X", "UPDATE", None, frozenset({BOT}), frozenset({FOLLOW_UP}), timedelta(0), None, False, None, naive
        )


def test_other_time_zones_are_converted_to_utc(policy: Policy) -> None:
    guayaquil = timezone(timedelta(hours=-5))
    window = ConversationWindow(datetime(2026, 11, 25, 9, 5, tzinfo=guayaquil))
    decision = decide(send(BOT, REPLY), window, datetime(2026, 11, 26, 9, 5, tzinfo=guayaquil), policy)

    assert window.last_user_message_at == LAST
    assert decision.allowed and decision.window_ends_at == LAST + 24 * HOUR
    assert decision.window_ends_at.tzinfo == UTC


# --- the decision as an answer -------------------------------------------------------------------------------


def test_a_refusal_raises_as_a_4xx_input_error_in_either_language(policy: Policy) -> None:
    decision = decide_after(policy, HOUR, send(BOT, FOLLOW_UP, tag="ACCOUNT_UPDATE", promotional=True))

    with pytest.raises(OutboxInputError) as spanish:
        decision.raise_if_refused()
    with pytest.raises(OutboxInputError) as english:
        decision.raise_if_refused("en")
    with pytest.raises(OutboxInputError):
        decision.send_fields()

    assert spanish.value.reason_code == english.value.reason_code == "promotional_with_tag"
    assert str(spanish.value) == decision.reason_es and str(english.value) == decision.reason_en
    assert isinstance(spanish.value, ValueError)


def test_an_allowed_decision_passes_through(policy: Policy) -> None:
    decision = decide_after(policy, HOUR, send(BOT, REPLY))
    assert decision.raise_if_refused() is decision


SCENARIOS: list[tuple[str, Any]] = [
    ("never_wrote", lambda p: decide_after(p, HOUR, send(), last=None)),
    ("outside_window", lambda p: decide_after(p, 2 * DAY, send(BOT, REPLY))),
    ("human_agent_window_expired", lambda p: decide_after(p, 8 * DAY, send(HUMAN, REPLY))),
    ("human_agent_bot_sender", lambda p: decide_after(p, 2 * DAY, send(BOT, REPLY, tag="HUMAN_AGENT"))),
    ("tag_retired", lambda p: decide_after(p, 2 * DAY, send(BOT, FOLLOW_UP, tag="ACCOUNT_UPDATE"))),
    ("promotional_with_tag", lambda p: decide_after(p, HOUR, send(HUMAN, REPLY, tag="HUMAN_AGENT", promotional=True))),
    ("promotional_outside_window", lambda p: decide_after(p, 2 * DAY, send(BOT, FOLLOW_UP, promotional=True))),
    ("unknown_tag", lambda p: decide_after(p, HOUR, send(tag="NOPE"))),
    ("tag_not_in_policy", lambda p: decide_after(Policy("t", p.rules[:2]), HOUR, send(HUMAN, tag="HUMAN_AGENT"))),
    ("utility_not_enabled", lambda p: decide_after(p, 2 * DAY, send(message=UTILITY_TEMPLATE))),
    ("sender_not_allowed", lambda p: decide_after(p, 2 * DAY, send(HUMAN, message=UTILITY_TEMPLATE), utility=True)),
    ("purpose_not_allowed", lambda p: decide_after(p, 2 * DAY, send(BOT, REPLY, message=UTILITY_TEMPLATE))),
    ("content_not_allowed", lambda p: decide_after(p, 2 * DAY, send(BOT, tag="CUSTOMER_FEEDBACK"))),
    ("rule_not_yet_valid", lambda p: decide_after(_timed_policy(LAST + DAY, None), HOUR, send())),
    ("rule_expired", lambda p: decide_after(_timed_policy(None, LAST), HOUR, send())),
]


@pytest.mark.parametrize(("code", "scenario"), SCENARIOS, ids=[code for code, _ in SCENARIOS])
def test_every_refusal_explains_itself_in_spanish_and_english(policy: Policy, code: str, scenario: Any) -> None:
    decision = scenario(policy)

    assert (decision.allowed, decision.reason_code) == (False, code)
    assert decision.messaging_type is None and decision.tag is None
    assert decision.reason_es.endswith(".") and decision.reason_en.endswith(".")
    assert decision.reason_es != decision.reason_en


def test_the_scenarios_cover_every_refusal_code() -> None:
    assert {code for code, _ in SCENARIOS} == REFUSAL_CODES


def test_a_refusal_about_time_gives_the_customers_last_message_in_both_languages(policy: Policy) -> None:
    for request, elapsed in ((send(BOT, REPLY), 2 * DAY), (send(HUMAN, REPLY), 8 * DAY)):
        decision = decide_after(policy, elapsed, request)
        assert "25 de noviembre, 14:05 UTC" in decision.reason_es
        assert "November 25, 14:05 UTC" in decision.reason_en


def test_dates_in_another_year_say_the_year(policy: Policy) -> None:
    last = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    decision = decide(send(BOT, REPLY), ConversationWindow(last), last + 2 * DAY, policy)
    assert "31 de diciembre de 2026, 23:00 UTC" in decision.reason_es
    assert "7 de enero, 23:00 UTC" in decision.reason_es  # HUMAN_AGENT until, in "now"'s year
    assert "December 31, 2026, 23:00 UTC" in decision.reason_en


# --- the window counts only the user's own doing, per page ---------------------------------------------------


def test_only_the_users_own_events_on_that_page_count() -> None:
    t = LAST
    timeline = [
        TimelineEvent("message", "A", t),
        TimelineEvent("postback", "A", t + HOUR),
        TimelineEvent("echo", "A", t + 2 * HOUR),  # our bot, or an agent in the Page inbox
        TimelineEvent("bot_message", "A", t + 3 * HOUR),
        TimelineEvent("agent_message", "A", t + 4 * HOUR),
        TimelineEvent("delivery", "A", t + 5 * HOUR),
        TimelineEvent("read", "A", t + 6 * HOUR),
        TimelineEvent("handover", "A", t + 7 * HOUR),
        TimelineEvent("comment", "A", t + 8 * HOUR),
        TimelineEvent("message", "B", t + 9 * HOUR),  # another page
    ]
    assert last_user_message_at(timeline, "A") == t + HOUR
    assert last_user_message_at(timeline, "B") == t + 9 * HOUR
    assert last_user_message_at(timeline, "C") is None
    assert last_user_message_at([], "A") is None


@pytest.mark.parametrize("kind", ["message", "quick_reply", "postback", "referral", "reaction"])
def test_messages_quick_replies_postbacks_referrals_and_reactions_reopen_the_window(kind: str) -> None:
    timeline = [TimelineEvent("message", "A", LAST), TimelineEvent(kind, "A", LAST + DAY)]
    assert last_user_message_at(timeline, "A") == LAST + DAY


def test_the_connectors_event_kinds_and_plain_tuples_are_understood() -> None:
    timeline = [
        (EventKind.MESSAGE, "A", LAST),
        (EventKind.REACTION, "A", LAST + HOUR),
        (EventKind.ECHO, "A", LAST + 2 * HOUR),
        (EventKind.READ, "A", LAST + 3 * HOUR),
        (EventKind.DELIVERY, "A", LAST + 4 * HOUR),
    ]
    assert last_user_message_at(timeline, "A") == LAST + HOUR


def test_the_latest_counts_whatever_the_order() -> None:
    timeline = [TimelineEvent("message", "A", LAST + DAY), TimelineEvent("message", "A", LAST)]
    assert last_user_message_at(timeline, "A") == LAST + DAY


# --- message shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (TEXT, ContentKind.STANDARD),
        ({"attachment": {"type": "image", "payload": {"url": "https://x/y.png"}}}, ContentKind.STANDARD),
        ({"attachment": {"type": "template", "payload": {"template_type": "button"}}}, ContentKind.STANDARD),
        (UTILITY_TEMPLATE, ContentKind.UTILITY_TEMPLATE),
        (FEEDBACK_TEMPLATE, ContentKind.CUSTOMER_FEEDBACK_TEMPLATE),
        ({"template": "not a mapping"}, ContentKind.STANDARD),
        (None, ContentKind.STANDARD),
    ],
)
def test_the_shape_of_the_message_is_recognised(message: Any, kind: ContentKind) -> None:
    assert content_kind(message) is kind
