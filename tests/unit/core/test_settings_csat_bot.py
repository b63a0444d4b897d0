"""CSAT_AFTER_BOT_MINUTES: the survey after the bot resolved a conversation is off unless set, and a value that
would ask while the person may still be writing (under 10 minutes) or outside the 24-hour window (over 23 hours),
or is not a whole number of minutes, stops the start with a message that names the setting and its range.

Would catch: the survey on by default, "5" accepted (asking mid-conversation), "1440" accepted (the question after
the window, refused by the policy every time), "abc" or "30.5" silently read as something."""

from __future__ import annotations

import pytest

from core.settings import SettingsError, load_settings


def test_off_unless_set() -> None:
    assert load_settings({}).csat_after_bot_minutes == 0
    assert load_settings({"CSAT_AFTER_BOT_MINUTES": ""}).csat_after_bot_minutes == 0


@pytest.mark.parametrize(("raw", "minutes"), [("0", 0), ("10", 10), ("30", 30), ("1380", 1380), (" 45 ", 45)])
def test_zero_or_ten_minutes_to_twenty_three_hours(raw: str, minutes: int) -> None:
    assert load_settings({"CSAT_AFTER_BOT_MINUTES": raw}).csat_after_bot_minutes == minutes


@pytest.mark.parametrize("raw", ["1", "9", "1381", "1440", "-10", "abc", "30.5", "nan", "inf"])
def test_other_values_stop_the_start(raw: str) -> None:
    with pytest.raises(SettingsError, match="CSAT_AFTER_BOT_MINUTES"):
        load_settings({"CSAT_AFTER_BOT_MINUTES": raw})
