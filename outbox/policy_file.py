"""The policy file: `outbox/policy.yml`, or the deployment's own copy, read into a `Policy`.

`load_policy()` reads the file the settings name (`OUTBOX_POLICY_FILE`, read by core/settings.py) and moves the
retirement date of the tags Meta retired in 2026 (`OUTBOX_RETIRED_TAGS_UNTIL`); `parse_policy()` builds the rules,
and a file Meta would not accept, or that is not what this module expects, is a `PolicyFileError` naming the file,
the rule and the field.

Standard library + PyYAML, Python 3.10: the Rasa process imports it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from outbox.model import OutboxError, Purpose, SenderKind
from outbox.policy import DEFAULT_CONTENT, ContentKind, Policy, SendingRule, SendRates, aware_utc

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.yml")

# Meta retired these three tags in 2026 (2026-02-10 or 2026-04-27 depending on the report; see policy.yml).
# OUTBOX_RETIRED_TAGS_UNTIL moves their `valid_until`; everything else about them stays in the policy file.
RETIRED_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})


class PolicyFileError(OutboxError):
    """The policy file cannot be used: unreadable, malformed, or a rule Meta would not accept."""

    reason_code = "policy_file_invalid"


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


def load_policy(path: str | Path | None = None, *, retired_tags_until: datetime | None = None) -> Policy:
    """Read the policy: `path` (the deployment's `Settings.outbox_policy_file`), else the shipped outbox/policy.yml.
    `retired_tags_until` (`Settings.outbox_retired_tags_until`) moves the retirement date of the three tags Meta
    retired in 2026; None keeps the file's dates."""
    chosen = Path(path) if path is not None else DEFAULT_POLICY_FILE
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{chosen}: cannot read the policy file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{chosen}: not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(chosen), retired_tags_until=retired_tags_until)


def parse_policy(data: Any, source: str = "<memory>", retired_tags_until: datetime | None = None) -> Policy:
    """Build a `Policy` from the YAML's data, with an error that names the file, the rule and the field."""
    if not isinstance(data, Mapping):
        raise PolicyFileError(f"{source}: the policy must be a mapping with `version` and `rules`")
    unknown = set(data) - {"version", "rules", "send_rates"}
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
    raw_rates = data.get("send_rates")
    try:
        send_rates = _parse_send_rates(raw_rates) if raw_rates is not None else shipped_send_rates()
    except (ValueError, TypeError) as exc:
        raise PolicyFileError(f"{source}: send_rates: {exc}") from exc
    try:
        return Policy(version=str(version), rules=tuple(rules), source=source, send_rates=send_rates)
    except ValueError as exc:
        raise PolicyFileError(f"{source}: {exc}") from exc


_SEND_RATE_FIELDS = ("calls_per_second", "audio_video_per_second", "outbox_per_second")


def _parse_send_rates(raw: Any) -> SendRates:
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a mapping with {', '.join(_SEND_RATE_FIELDS)}")
    unknown = set(raw) - set(_SEND_RATE_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    missing = [name for name in _SEND_RATE_FIELDS if name not in raw]
    if missing:
        raise ValueError(f"missing fields: {', '.join(missing)}")
    return SendRates(**{name: raw[name] for name in _SEND_RATE_FIELDS})


def shipped_send_rates() -> SendRates:
    """The shipped policy.yml's `send_rates`: what a deployment's own policy file without that section (written
    before it existed) sends by."""
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    return _parse_send_rates(data["send_rates"])


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
        return aware_utc(value, name)
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
        return aware_utc(parsed, name)
    raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO time with a zone")
