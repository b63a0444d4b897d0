"""The bot's intents, read once from `domain.yml` (the app ships it beside its packages): a link may only start one
of them, else every scan would send Rasa an intent it does not know."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import yaml

from core.settings import ROOT

log = logging.getLogger(__name__)

DOMAIN_FILE = ROOT / "domain.yml"


@functools.cache
def bot_intents(domain_file: Path = DOMAIN_FILE) -> frozenset[str] | None:
    """The intent names of the domain (`intents:`, names or `{name: {...}}` entries); None when the file cannot be
    read (logged: links are then created with a warning instead of the check)."""
    try:
        domain = yaml.safe_load(domain_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        log.warning("the bot's domain could not be read to check link intents", extra={"path": str(domain_file)},
                    exc_info=True)
        return None
    listed = domain.get("intents") if isinstance(domain, dict) else None
    if not isinstance(listed, list):
        log.warning("the bot's domain lists no intents", extra={"path": str(domain_file)})
        return None
    names = (next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item for item in listed)
    return frozenset(name for name in names if isinstance(name, str))
