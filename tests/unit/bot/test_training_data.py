"""Consistency of domain.yml and data/*.yml, read with PyYAML (no Rasa needed).

`rasa data validate` checks the same files from Rasa's side; these tests add what
Messenger and our conventions need and run in the app's environment in a second.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = ROOT / "data"

MESSENGER_QUICK_REPLY_TITLE_LIMIT = 20
MESSENGER_TEXT_LIMIT = 2000
MIN_EXAMPLES_PER_INTENT = 20
RASA_DEFAULT_INTENTS = {"nlu_fallback", "restart", "back", "out_of_scope", "session_start"}
RASA_DEFAULT_ACTIONS = {
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_revert_fallback_events",
    "action_default_ask_affirmation",
    "action_default_ask_rephrase",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_back",
    "action_extract_slots",
}


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return load_yaml(ROOT / "domain.yml")


@pytest.fixture(scope="module")
def training_files() -> list[dict[str, Any]]:
    files = sorted(DATA_DIR.glob("*.yml"))
    assert files, f"no training data in {DATA_DIR}"
    return [load_yaml(path) for path in files]


@pytest.fixture(scope="module")
def examples_by_intent(training_files: list[dict[str, Any]]) -> dict[str, list[str]]:
    examples: dict[str, list[str]] = defaultdict(list)
    for data in training_files:
        for block in data.get("nlu") or []:
            if "intent" in block:
                examples[block["intent"]].extend(parse_examples(block["examples"]))
    return dict(examples)


def parse_examples(block: str) -> list[str]:
    return [line.strip()[2:].strip() for line in block.splitlines() if line.strip().startswith("- ")]


def normalized(example: str) -> str:
    """How DIET roughly sees it: case, accents, punctuation and spacing do not matter."""
    without_accents = "".join(
        char for char in unicodedata.normalize("NFD", example.lower()) if unicodedata.category(char) != "Mn"
    )
    return " ".join(re.sub(r"[¿?¡!.,;:]", " ", without_accents).split())


def domain_intents(domain: dict[str, Any]) -> set[str]:
    return {next(iter(item)) if isinstance(item, dict) else item for item in domain.get("intents") or []}


def dialogue_steps(training_files: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for data in training_files:
        for section, name_key in (("rules", "rule"), ("stories", "story")):
            for dialogue in data.get(section) or []:
                for step in dialogue.get("steps") or []:
                    yield dialogue[name_key], step


def domain_messages(domain: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for response_name, variants in (domain.get("responses") or {}).items():
        for variant in variants:
            yield response_name, variant


def test_every_intent_in_rules_and_stories_is_in_the_domain(
    domain: dict[str, Any], training_files: list[dict[str, Any]]
) -> None:
    known = domain_intents(domain) | RASA_DEFAULT_INTENTS
    unknown = {(name, step["intent"]) for name, step in dialogue_steps(training_files) if "intent" in step}
    assert {pair for pair in unknown if pair[1] not in known} == set()


def test_every_action_in_rules_and_stories_exists(domain: dict[str, Any], training_files: list[dict[str, Any]]) -> None:
    responses = set(domain.get("responses") or {})
    actions = set(domain.get("actions") or []) | RASA_DEFAULT_ACTIONS
    missing = set()
    for name, step in dialogue_steps(training_files):
        action = step.get("action")
        if action is None:
            continue
        exists = action in responses if action.startswith("utter_") else action in actions
        if not exists:
            missing.add((name, action))
    assert missing == set()


def test_every_domain_intent_has_a_rule_or_story(domain: dict[str, Any], training_files: list[dict[str, Any]]) -> None:
    handled = {step["intent"] for _, step in dialogue_steps(training_files) if "intent" in step}
    assert domain_intents(domain) - handled == set()
    assert "nlu_fallback" in handled


def test_nlu_intents_and_domain_intents_are_the_same(
    domain: dict[str, Any], examples_by_intent: dict[str, list[str]]
) -> None:
    assert set(examples_by_intent) == domain_intents(domain)


def test_each_intent_has_enough_examples(examples_by_intent: dict[str, list[str]]) -> None:
    too_few = {
        intent: len(examples)
        for intent, examples in examples_by_intent.items()
        if len(examples) < MIN_EXAMPLES_PER_INTENT
    }
    assert too_few == {}


def test_no_example_is_in_two_intents(examples_by_intent: dict[str, list[str]]) -> None:
    intents_by_example: dict[str, set[str]] = defaultdict(set)
    for intent, examples in examples_by_intent.items():
        for example in examples:
            intents_by_example[normalized(example)].add(intent)
    assert {example: intents for example, intents in intents_by_example.items() if len(intents) > 1} == {}


def test_no_example_is_repeated_within_an_intent(examples_by_intent: dict[str, list[str]]) -> None:
    repeated = {
        intent: sorted({e for e in examples if examples.count(e) > 1})
        for intent, examples in examples_by_intent.items()
        if len(set(examples)) != len(examples)
    }
    assert repeated == {}


def test_every_response_fits_in_a_messenger_message(domain: dict[str, Any]) -> None:
    for name, variant in domain_messages(domain):
        text = variant.get("text")
        assert text and text.strip(), name
        assert len(text) <= MESSENGER_TEXT_LIMIT, name


def test_every_quick_reply_and_button_title_fits_on_messenger(domain: dict[str, Any]) -> None:
    for name, variant in domain_messages(domain):
        for reply in (variant.get("quick_replies") or []) + (variant.get("buttons") or []):
            assert 0 < len(reply["title"]) <= MESSENGER_QUICK_REPLY_TITLE_LIMIT, (name, reply)


def test_quick_reply_payloads_name_a_domain_intent(domain: dict[str, Any]) -> None:
    intents = domain_intents(domain)
    for name, variant in domain_messages(domain):
        for reply in variant.get("quick_replies") or []:
            payload = reply["payload"]
            assert payload.startswith("/") and payload[1:] in intents, (name, reply)


def test_typing_a_quick_reply_title_is_understood_like_tapping_it(
    domain: dict[str, Any], examples_by_intent: dict[str, list[str]]
) -> None:
    """Users often type the title instead of tapping the quick reply."""
    for name, variant in domain_messages(domain):
        for reply in variant.get("quick_replies") or []:
            intent = reply["payload"].lstrip("/")
            trained = {normalized(example) for example in examples_by_intent.get(intent, [])}
            assert normalized(reply["title"]) in trained, (name, reply)


def test_sessions_expire_after_an_hour_and_keep_slots(domain: dict[str, Any]) -> None:
    assert domain["session_config"] == {"session_expiration_time": 60, "carry_over_slots_to_new_session": True}


def test_the_custom_actions_are_declared(domain: dict[str, Any]) -> None:
    assert {"action_knowledge_answer", "action_session_start"} <= set(domain.get("actions") or [])
