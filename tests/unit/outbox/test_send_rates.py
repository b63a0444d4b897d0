"""Meta's Send API limits in the policy file (`send_rates`), what reads them, and the page rate's setting."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from broadcasts.service import broadcast_rate
from core.settings import SettingsError, load_settings
from meta.limits import carries_audio_or_video
from outbox.model import OutboxMessage, Purpose, SenderKind, Status
from outbox.policy import Policy, SendRates
from outbox.policy_file import DEFAULT_POLICY_FILE, PolicyFileError, load_policy, parse_policy
from outbox.worker import AUDIO_VIDEO_LANE, page_rate_of, send_lane

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def shipped() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))


def test_the_shipped_rates_are_metas_and_the_outbox_keeps_room_for_two_sender_actions_a_message() -> None:
    rates = load_policy().send_rates
    assert rates == SendRates(calls_per_second=300, audio_video_per_second=10, outbox_per_second=100)
    # Each answer may come with mark_seen and typing_on (connectors/messenger.py), outside the outbox.
    assert rates.outbox_per_second * 3 <= rates.calls_per_second


def test_a_policy_file_without_send_rates_takes_the_shipped_ones(tmp_path: Path) -> None:
    data = shipped()
    del data["send_rates"]
    own = tmp_path / "policy.yml"
    own.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_policy(own).send_rates == load_policy().send_rates


def test_a_deployment_may_set_its_own_share() -> None:
    data = shipped()
    data["send_rates"] = {**data["send_rates"], "outbox_per_second": 250.5}
    assert parse_policy(data).send_rates == SendRates(300, 10, 250.5)


@pytest.mark.parametrize(
    ("rates", "names"),
    [
        ({"calls_per_second": 300, "audio_video_per_second": 10}, "missing fields: outbox_per_second"),
        ({"calls_per_second": 300, "audio_video_per_second": 10, "outbox_per_second": 100, "burst": 5},
         "unknown fields: burst"),
        ({"calls_per_second": 300, "audio_video_per_second": 10, "outbox_per_second": 400}, "must not exceed"),
        ({"calls_per_second": -1, "audio_video_per_second": 10, "outbox_per_second": 1}, "calls_per_second"),
        ({"calls_per_second": 300, "audio_video_per_second": 0, "outbox_per_second": 1}, "audio_video_per_second"),
        ({"calls_per_second": 300, "audio_video_per_second": "10", "outbox_per_second": 1}, "audio_video_per_second"),
        ({"calls_per_second": True, "audio_video_per_second": 10, "outbox_per_second": 1}, "calls_per_second"),
        ({"calls_per_second": float("inf"), "audio_video_per_second": 10, "outbox_per_second": 1},
         "calls_per_second"),
        ([300, 10, 100], "must be a mapping"),
    ],
)
def test_send_rates_meta_would_not_hold_to_are_refused_naming_the_field(rates: Any, names: str) -> None:
    data = shipped()
    data["send_rates"] = rates
    with pytest.raises(PolicyFileError, match="send_rates") as raised:
        parse_policy(data, source="own.yml")
    assert names in str(raised.value) and "own.yml" in str(raised.value)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"text": "hola"}, False),
        ({"attachment": {"type": "image", "payload": {"url": "https://e.com/a.png"}}}, False),
        ({"attachment": {"type": "file", "payload": {"url": "https://e.com/a.pdf"}}}, False),
        ({"attachment": {"type": "video", "payload": {"url": "https://e.com/a.mp4"}}}, True),
        ({"attachment": {"type": "audio", "payload": {"attachment_id": "123"}}}, True),
        ({"attachments": [{"type": "image", "payload": {}}, {"type": "audio", "payload": {}}]}, True),
        ({"attachment": {"type": "template", "payload": {"template_type": "media",
                                                          "elements": [{"media_type": "video", "url": "u"}]}}}, True),
        ({"attachment": {"type": "template", "payload": {"template_type": "media",
                                                          "elements": [{"media_type": "image", "url": "u"}]}}}, False),
        ({"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": "x"}}}, False),
        ({"attachment": "video"}, False),
        ({"attachments": "video"}, False),
        ("video", False),
    ],
)
def test_what_counts_as_audio_or_video(message: Any, expected: bool) -> None:
    assert carries_audio_or_video(message) is expected


def outgoing(message: dict[str, Any]) -> OutboxMessage:
    return OutboxMessage(id=1, page_id="page-1", recipient_id="u-1", message=message, sender=SenderKind.BOT,
                         purpose=Purpose.REPLY, tag=None, promotional=False, idempotency_key="k",
                         status=Status.PENDING, created_at=T0, due_at=T0, next_attempt_at=T0)


@pytest.mark.parametrize(
    ("message", "page_rate", "lane"),
    [
        ({"text": "hola"}, 100.0, ("page-1", 100.0)),
        ({"text": "hola"}, 0.0, ("page-1", 0.0)),
        ({"attachment": {"type": "video", "payload": {}}}, 100.0, ("page-1" + AUDIO_VIDEO_LANE, 10)),
        ({"attachment": {"type": "video", "payload": {}}}, 0.0, ("page-1" + AUDIO_VIDEO_LANE, 10)),
        ({"attachment": {"type": "audio", "payload": {}}}, 2.0, ("page-1" + AUDIO_VIDEO_LANE, 2.0)),
    ],
)
def test_the_lane_a_message_waits_for(message: dict[str, Any], page_rate: float, lane: tuple[str, float]) -> None:
    assert send_lane(outgoing(message), load_policy(), page_rate) == lane


def test_a_policy_built_in_code_has_no_rate_of_its_own() -> None:
    bare = Policy(version="t", rules=load_policy().rules)
    assert page_rate_of(bare, None) == 0.0
    assert send_lane(outgoing({"attachment": {"type": "video", "payload": {}}}), bare, 0.0) == ("page-1", 0.0)
    assert page_rate_of(load_policy(), None) == 100 and page_rate_of(bare, 7.5) == 7.5
    with pytest.raises(ValueError, match="page_rate"):
        page_rate_of(bare, -1)


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0", 0.0), ("25", 25.0), ("0.5", 0.5)])
def test_outbox_page_rate_unset_is_the_policys(raw: str | None, expected: float | None) -> None:
    env = {} if raw is None else {"OUTBOX_PAGE_RATE": raw}
    assert load_settings(env).outbox_page_rate == expected


@pytest.mark.parametrize("raw", ["-1", "fast", "inf", "nan"])
def test_an_outbox_page_rate_that_is_no_rate_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="OUTBOX_PAGE_RATE"):
        load_settings({"OUTBOX_PAGE_RATE": raw})


@pytest.mark.parametrize(("broadcast", "outbox", "planned"), [(10, 100, 10), (10, 5, 5), (10, 0, 10)])
def test_broadcasts_are_never_planned_faster_than_the_outbox_sends(broadcast: float, outbox: float,
                                                                  planned: float) -> None:
    assert broadcast_rate(broadcast, outbox) == planned
