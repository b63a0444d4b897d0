"""Snippets ("Atajos"): saved replies an agent inserts by typing `/name` in the reply box.

Pure: names, checks and expansion. The console stores them (`ConsoleStore`); the page offers them as you
type `/`, and whatever `/name` of a known snippet is still in a reply when it is sent is expanded here, so API
clients get the same behaviour as the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_TEXT = 2000  # one Messenger text message
# `/name` at the start or after whitespace, ending at whitespace, punctuation or the end (not a URL's path).
_REFERENCE = re.compile(r"(?<!\S)/([a-z0-9][a-z0-9_-]{0,31})(?=$|[\s.,;:!?)])", re.IGNORECASE)


class SnippetError(ValueError):
    """A name or text that cannot be saved; the message is for the agent (Spanish)."""


def check_name(name: str) -> str:
    value = name.strip().lstrip("/").lower()
    if not NAME_PATTERN.match(value):
        raise SnippetError(
            "el nombre del atajo debe tener de 1 a 32 caracteres: letras minúsculas sin tildes, números, «_» o «-»"
        )
    return value


def check_text(text: str) -> str:
    value = text.strip()
    if not value:
        raise SnippetError("el texto del atajo está vacío")
    if len(value) > MAX_TEXT:
        raise SnippetError(f"el texto del atajo tiene {len(value)} caracteres; Messenger admite {MAX_TEXT}")
    return value


@dataclass(frozen=True)
class Expansion:
    text: str
    used: tuple[str, ...]  # snippet names replaced, in order


def expand(text: str, snippets: Mapping[str, str]) -> Expansion:
    """Replace every `/name` of a known snippet; unknown names stay as typed."""
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name not in snippets:
            return match.group(0)
        used.append(name)
        return snippets[name]

    return Expansion(_REFERENCE.sub(replace, text), tuple(used))
