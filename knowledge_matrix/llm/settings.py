"""Where the OpenAI-compatible server is and how long a fallback answer may take: `LLMSettings`, made from the
values `core.settings.load_settings()` read and checked (`LLM_*`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.hosts import is_loopback_host  # one rule for loopback, also checked at start in production
from core.settings import DEFAULT_LLM_BASE_URL, DEFAULT_LLM_MODEL, DEFAULT_LLM_TIMEOUT_SECONDS, Settings
from knowledge_matrix.errors import LLMSettingsError

DEFAULT_BASE_URL = DEFAULT_LLM_BASE_URL
DEFAULT_MODEL = DEFAULT_LLM_MODEL
DEFAULT_TIMEOUT_SECONDS = DEFAULT_LLM_TIMEOUT_SECONDS
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


def llm_settings_from(settings: Settings) -> LLMSettings:
    """The fallback's part of the settings (`LLM_*`, the key also as `OPENAI_API_KEY`; numbers already checked by
    `load_settings`); a base URL that is not http(s), or not https in production off this machine, is an
    `LLMSettingsError` (the action server then keeps the fallback off)."""
    return LLMSettings(
        base_url=check_base_url(settings.llm_base_url, production=settings.is_production),
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_seconds=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        max_tokens=settings.llm_max_tokens,
    )
