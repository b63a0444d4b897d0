"""Property tests: over random timelines and send requests, the policy never lets through what Meta forbids.

The oracle below is written out plainly from Meta's rules, without calling the policy module's internals: it reads
the timeline itself, knows the windows by heart, and checks every allowed decision against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbox.model import NewMessage, Purpose, SenderKind
from outbox.policy import ConversationWindow, Decision, Policy, decide, last_user_message_at
from outbox.policy_file import load_policy

UTC = timezone.utc
START = datetime(2026, 1, 1, tzinfo=UTC)  # timelines span both sides of the 2026-04-27 retirement
SPAN_SECONDS = 420 * 24 * 3600
HOURS_24 = timedelta(hours=24)
DAYS_7 = timedelta(days=7)
RETIRED = {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"}
RETIRED_ON = datetime(2026, 4, 27, tzinfo=UTC)
TAGS_META_ACCEPTS = {"HUMAN_AGENT", "CUSTOMER_FEEDBACK"} | RETIRED
PAGES = ("PAGE_A", "PAGE_B")

# The oracle's own list of what the user does (Meta: messages, quick replies, postbacks, referrals, reactions).
ORACLE_USER_KINDS = {"message", "quick_reply", "postback", "referral", "reaction"}
NOT_THE_USER = ["echo", "bot_message", "agent_message", "delivery", "read", "handover", "comment"]

TEXT: Mapping[str, Any] = {"text": "Hola"}
UTILITY_TEMPLATE: Mapping[str, Any] = {"template": {"name": "pedido", "language": {"code": "es"}}}
FEEDBACK_TEMPLATE: Mapping[str, Any] = {
    "attachment": {"type": "template", "payload": {"template_type": "customer_feedback"}}
}

POLICY: Policy = load_policy()

Timeline = list[tuple[str, str, datetime]]

# Offsets that sit on the windows' edges, so the boundaries are tried on every run.
EDGES = [
    timedelta(0),
    timedelta(seconds=1),
    HOURS_24 - timedelta(seconds=1),
    HOURS_24,
    HOURS_24 + timedelta(seconds=1),
    DAYS_7 - timedelta(seconds=1),
    DAYS_7,
    DAYS_7 + timedelta(seconds=1),
    timedelta(days=30),
]


def moments(start: datetime = START, span_seconds: int = SPAN_SECONDS) -> st.SearchStrategy[datetime]:
    return st.integers(min_value=0, max_value=span_seconds).map(lambda s: start + timedelta(seconds=s))


def timelines(start: datetime = START) -> st.SearchStrategy[Timeline]:
    kinds = st.sampled_from(sorted(ORACLE_USER_KINDS) + NOT_THE_USER)
    return st.lists(st.tuples(kinds, st.sampled_from(PAGES), moments(start)), max_size=25)


BOOLEANS = st.booleans()
SENDERS = st.sampled_from(list(SenderKind))
PURPOSES = st.sampled_from(list(Purpose))
REQUESTED_TAGS = st.one_of(
    st.none(),
    st.sampled_from(sorted(TAGS_META_ACCEPTS)),
    st.sampled_from(["human_agent", "SHIPPING_UPDATE", "UTILITY", ""]),
)
CONTENTS = st.sampled_from([TEXT, TEXT, UTILITY_TEMPLATE, FEEDBACK_TEMPLATE])
OFFSETS = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=0, max_value=9 * 24 * 3600).map(lambda s: timedelta(seconds=s)),
)


@st.composite
def scenarios(
    draw: st.DrawFn,
    senders: st.SearchStrategy[SenderKind] = SENDERS,
    purposes: st.SearchStrategy[Purpose] = PURPOSES,
    tags: st.SearchStrategy[str | None] = REQUESTED_TAGS,
    promotional: st.SearchStrategy[bool] = BOOLEANS,
    contents: st.SearchStrategy[Mapping[str, Any]] = CONTENTS,
    opt_in: st.SearchStrategy[bool] = BOOLEANS,
    start: datetime = START,
) -> tuple[Timeline, NewMessage, bool, datetime]:
    """A timeline on two pages and a send request; `now` is mostly near the user's last doing (on the edges)."""
    timeline = draw(timelines(start))
    page = draw(st.sampled_from(PAGES))
    request = NewMessage(
        page_id=page,
        recipient_id="psid",
        message=draw(contents),
        sender=draw(senders),
        purpose=draw(purposes),
        tag=draw(tags),
        promotional=draw(promotional),
    )
    last = oracle_last_contact(timeline, page, request.purpose)
    anchors = [at for _, event_page, at in timeline if event_page == page]
    choice = draw(st.integers(min_value=0, max_value=3))
    if last is not None and choice < 2:
        now = last + draw(OFFSETS)  # the interesting part: around the windows of the last contact
    elif anchors and choice == 2:
        now = draw(st.sampled_from(anchors)) + draw(OFFSETS)
    else:
        now = draw(moments(start))
    return timeline, request, draw(opt_in), now


COMMENT_PURPOSES = (Purpose.PRIVATE_REPLY, Purpose.PUBLIC_REPLY)  # measured from the comment


def oracle_last_contact(timeline: Timeline, page: str, purpose: Purpose) -> datetime | None:
    """For a private or public reply, the comment; otherwise the user's own last message, postback, ... on that page."""
    kinds = {"comment"} if purpose in COMMENT_PURPOSES else ORACLE_USER_KINDS
    times = [at for kind, event_page, at in timeline if event_page == page and kind in kinds]
    return max(times) if times else None


def conversation_for(timeline: Timeline, request: NewMessage, opt_in: bool) -> ConversationWindow:
    """What the outbox would pass: the store's last user message (here the helper), or the comment's time."""
    if request.purpose in COMMENT_PURPOSES:
        comments = [at for kind, page, at in timeline if page == request.page_id and kind == "comment"]
        return ConversationWindow(max(comments) if comments else None, page_utility_opt_in=opt_in)
    return ConversationWindow(last_user_message_at(timeline, request.page_id), page_utility_opt_in=opt_in)


def check_meta_rules(
    decision: Decision,
    timeline: Timeline,
    request: NewMessage,
    opt_in: bool,
    now: datetime,
) -> None:
    if decision.tag is not None:
        assert not request.promotional, "a tag on promotional content"
    if decision.tag == "HUMAN_AGENT":
        assert request.sender is SenderKind.HUMAN, "HUMAN_AGENT from the bot"
    if decision.tag in RETIRED:
        assert now < RETIRED_ON, f"{decision.tag} after its retirement"
    if not decision.allowed:
        assert decision.messaging_type is None and decision.tag is None
        assert decision.reason_code and decision.reason_es and decision.reason_en
        return

    # A public reply is a comment (no messaging_type on the wire), and only a public reply is.
    assert (decision.messaging_type == "COMMENT") == (request.purpose is Purpose.PUBLIC_REPLY)
    # What goes on the wire is a pair Meta accepts.
    assert decision.messaging_type in {"RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY", "COMMENT"}
    assert (decision.messaging_type == "MESSAGE_TAG") == (decision.tag is not None)
    assert decision.tag is None or decision.tag in TAGS_META_ACCEPTS

    # Never outside its window, measured from the user's own doing on this page.
    last = oracle_last_contact(timeline, request.page_id, request.purpose)
    assert last is not None, "a message to someone who never wrote (or a private reply without a comment)"
    elapsed = now - last
    if decision.messaging_type in ("RESPONSE", "UPDATE"):
        limit = DAYS_7 if request.purpose is Purpose.PRIVATE_REPLY else HOURS_24
        assert elapsed <= limit, f"{decision.messaging_type} {elapsed} after the user's last message"
    elif decision.tag in ("HUMAN_AGENT", "CUSTOMER_FEEDBACK"):
        assert elapsed <= DAYS_7, f"{decision.tag} {elapsed} after the user's last message"
        assert elapsed > HOURS_24 or request.tag == decision.tag, "a tag picked inside the standard window"
    elif decision.messaging_type == "UTILITY":
        assert opt_in, "a utility template on a page that did not opt in"
        assert "template" in request.message, "UTILITY for something that is not a utility template"

    # Promotional content only ever goes as a plain message.
    if request.promotional:
        assert decision.messaging_type in ("RESPONSE", "UPDATE", "COMMENT")
    # The policy never makes up a use-case tag nobody asked for, and never swaps one tag for another.
    if request.tag is None:
        assert decision.tag in (None, "HUMAN_AGENT", "CUSTOMER_FEEDBACK")
    else:
        assert decision.tag in (None, request.tag)
        if decision.tag is None:
            assert decision.reason_code == "tag_not_needed"


def decide_and_check(scenario: tuple[Timeline, NewMessage, bool, datetime]) -> Decision:
    timeline, request, opt_in, now = scenario
    decision = decide(request, conversation_for(timeline, request, opt_in), now, POLICY)
    check_meta_rules(decision, timeline, request, opt_in, now)
    return decision


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_decision_breaks_metas_rules(scenario: tuple[Timeline, NewMessage, bool, datetime]) -> None:
    decide_and_check(scenario)


# The same rules, with the requests drawn where each invariant is at risk.


@settings(max_examples=500, deadline=None)
@given(
    scenarios(
        tags=st.sampled_from(sorted(TAGS_META_ACCEPTS)),  # untagged promotional requests: the general test
        promotional=st.just(True),
        contents=st.sampled_from([TEXT, FEEDBACK_TEMPLATE]),
    )
)
def test_promotional_content_is_never_tagged(scenario: tuple[Timeline, NewMessage, bool, datetime]) -> None:
    decision = decide_and_check(scenario)
    assert decision.tag is None and decision.messaging_type in (None, "RESPONSE", "UPDATE")


@settings(max_examples=300, deadline=None)
@given(
    scenarios(
        senders=st.sampled_from([SenderKind.BOT, SenderKind.SYSTEM]),
        tags=st.sampled_from([None, "HUMAN_AGENT"]),
        promotional=st.just(False),
        contents=st.just(TEXT),
    )
)
def test_the_bot_never_sends_human_agent(scenario: tuple[Timeline, NewMessage, bool, datetime]) -> None:
    decision = decide_and_check(scenario)
    assert decision.tag != "HUMAN_AGENT"


@settings(max_examples=300, deadline=None)
@given(
    scenarios(
        senders=st.sampled_from([SenderKind.BOT, SenderKind.SYSTEM]),
        purposes=st.just(Purpose.FOLLOW_UP),
        tags=st.sampled_from(sorted(RETIRED)),
        promotional=st.just(False),
        contents=st.just(TEXT),
        start=RETIRED_ON - timedelta(days=30),
    )
)
def test_retired_tags_are_never_sent_after_their_date(scenario: tuple[Timeline, NewMessage, bool, datetime]) -> None:
    _, request, _, now = scenario
    decision = decide_and_check(scenario)
    if now >= RETIRED_ON:
        assert decision.tag is None


@settings(max_examples=300, deadline=None)
@given(
    scenarios(
        senders=st.sampled_from([SenderKind.BOT, SenderKind.SYSTEM]),
        purposes=st.sampled_from([Purpose.REPLY, Purpose.FOLLOW_UP]),
        tags=st.none(),
        promotional=st.just(False),
        contents=st.sampled_from([TEXT, UTILITY_TEMPLATE]),
        start=RETIRED_ON - timedelta(days=60),
    )
)
def test_the_bot_outside_the_window_gets_no_tag_it_did_not_ask_for(
    scenario: tuple[Timeline, NewMessage, bool, datetime],
) -> None:
    """Automated late messages: refused, or a utility template on an opted-in page; never a use-case tag."""
    decision = decide_and_check(scenario)
    assert decision.tag is None


@settings(max_examples=300, deadline=None)
@given(
    timelines(),
    st.sampled_from(PAGES),
    st.sampled_from([Purpose.REPLY, Purpose.FOLLOW_UP]),
    st.sampled_from(list(SenderKind)),
    st.booleans(),
    st.sampled_from(EDGES[:5]),
)
def test_whoever_the_user_wrote_to_in_the_last_24_hours_can_be_answered(
    timeline: Timeline,
    page: str,
    purpose: Purpose,
    sender: SenderKind,
    promotional: bool,
    offset: timedelta,
) -> None:
    """The other side: the policy is not safe by refusing everything."""
    last = oracle_last_contact(timeline, page, purpose)
    now = (last or START) + offset
    request = NewMessage(page, "psid", TEXT, sender=sender, purpose=purpose, promotional=promotional)

    decision = decide(request, conversation_for(timeline, request, False), now, POLICY)

    if last is None:
        assert (decision.allowed, decision.reason_code) == (False, "never_wrote")
    elif offset <= HOURS_24:
        expected = "RESPONSE" if purpose is Purpose.REPLY else "UPDATE"
        assert (decision.allowed, decision.messaging_type, decision.tag) == (True, expected, None)


@settings(max_examples=300, deadline=None)
@given(
    timelines(),
    st.sampled_from(PAGES),
    st.integers(min_value=24 * 3600 + 1, max_value=7 * 24 * 3600),
)
def test_a_person_can_answer_with_human_agent_for_7_days(timeline: Timeline, page: str, seconds: int) -> None:
    last = oracle_last_contact(timeline, page, Purpose.REPLY)
    request = NewMessage(page, "psid", TEXT, sender=SenderKind.HUMAN, purpose=Purpose.REPLY)
    now = (last or START) + timedelta(seconds=seconds)

    decision = decide(request, conversation_for(timeline, request, False), now, POLICY)

    assert decision.allowed == (last is not None)
    if last is not None:
        assert (decision.messaging_type, decision.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")
        assert decision.window_ends_at == last + DAYS_7
