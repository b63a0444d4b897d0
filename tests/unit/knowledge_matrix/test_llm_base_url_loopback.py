"""`LLM_BASE_URL` in production: http only for a real loopback address, parsed (issue 8 review, item 5).

Old code treated any host starting with `127.` as loopback, so `http://127.evil.com/v1` and
`http://127.0.0.1.nip.io/v1` (public names) passed and the key and customers' words went out in clear text."""

from __future__ import annotations

import pytest

from knowledge_matrix.errors import LLMSettingsError
from knowledge_matrix.llm.settings import check_base_url


@pytest.mark.parametrize("url", ["http://127.evil.com/v1", "http://127.0.0.1.nip.io/v1", "http://localhost.evil.com/v1"])
def test_names_that_only_look_like_loopback_are_refused_in_production(url: str) -> None:
    with pytest.raises(LLMSettingsError, match="must use https in production"):
        check_base_url(url, production=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434/v1", "http://127.9.9.9/v1", "http://[::1]:8080/v1",
                                 "http://LOCALHOST:8080/v1"])
def test_real_loopback_addresses_may_use_http_in_production(url: str) -> None:
    assert check_base_url(url, production=True) == url
