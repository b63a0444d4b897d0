"""Where the OpenAI-compatible server is and how long a fallback answer may take: `LLM_*`, read in one place."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.hosts import is_loopback_host  # one rule for loopback, also checked at start in production
from knowledge_matrix.errors import LLMSettingsError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_SECONDS = 4.0
DEFAULT_MAX_RETRIES = 1
DEFAULT_MAX_TOKENS = 300


@dataclass(frozen=True)
class LLMSettings:
    """Where the OpenAI-compatible server is and how long a fallback answer may take, in total."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_MODEL
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    max_tokens: int = DEFAULT_MAX_TOKENS

    @property
    def enabled(self) -> bool:
        """Without a key the fallback never calls out: the user is offered a person at once."""
        return bool(self.api_key.strip())


def _number_setting(
    env: Mapping[str, str], name: str, default: float, low: float, high: float, *, whole: bool = False
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise LLMSettingsError(f"{name} must be a number") from exc
    if not (low <= value <= high) or math.isnan(value):
        raise LLMSettingsError(f"{name} must be between {low:g} and {high:g}")
    if whole and not value.is_integer():
        raise LLMSettingsError(f"{name} must be a whole number")
    return value


def check_base_url(base_url: str, *, production: bool) -> str:
    """`LLM_BASE_URL` must be an http(s) URL; in production https, except a loopback server (a local
    model on the same host: the key and the customers' words never leave the machine)."""
    parsed = urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LLMSettingsError("LLM_BASE_URL must be an http(s) URL")
    loopback = is_loopback_host(parsed.hostname)
    if production and parsed.scheme != "https" and not loopback:
        raise LLMSettingsError("LLM_BASE_URL must use https in production (http only for a loopback server)")
    return base_url


def load_llm_settings(env: Mapping[str, str] | None = None) -> LLMSettings:
    """Read `LLM_*` (the key also as `OPENAI_API_KEY`); safe defaults, fallback off without a key.
    With `BOT_ENV=production` the base URL must be https (or loopback)."""
    env = os.environ if env is None else env
    production = env.get("BOT_ENV", "").strip().lower() == "production"
    return LLMSettings(
        base_url=check_base_url(
            (env.get("LLM_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/"), production=production
        ),
        api_key=(env.get("LLM_API_KEY", "").strip() or env.get("OPENAI_API_KEY", "").strip()),
        model=env.get("LLM_MODEL", "").strip() or DEFAULT_MODEL,
        timeout_seconds=_number_setting(env, "LLM_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, 0.5, 30.0),
        max_retries=int(_number_setting(env, "LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES, 0, 5, whole=True)),
        max_tokens=int(_number_setting(env, "LLM_MAX_TOKENS", DEFAULT_MAX_TOKENS, 16, 4096, whole=True)),
    )
