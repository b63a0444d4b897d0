"""One catalogue of Meta's error codes (meta.errors.META_ERRORS) for the Graph client and the Graph sandbox.

Would catch: the sandbox answering a code with a status or `is_transient` flag that the client then classifies as
another kind (before issue 10, code 1200 was transient in the sandbox's table and permanent in the client's), or a
catalogue row whose kind the client's mapping ignores.
"""

from __future__ import annotations

import pytest

from meta.errors import (
    META_ERRORS,
    GraphError,
    Kind,
    PermanentGraphError,
    PolicyViolationError,
    RateLimitedError,
    RecipientUnavailableError,
    TokenInvalidError,
    TransientGraphError,
    classify_graph_error,
    meta_error,
)
from sandbox.graph import graph_error

ERROR_OF_KIND: dict[Kind, type[GraphError]] = {
    Kind.RATE_LIMITED: RateLimitedError,
    Kind.OUTSIDE_WINDOW: PolicyViolationError,
    Kind.TOKEN_INVALID: TokenInvalidError,
    Kind.RECIPIENT_UNAVAILABLE: RecipientUnavailableError,
    Kind.TRANSIENT: TransientGraphError,
    Kind.PERMANENT: PermanentGraphError,
}


@pytest.mark.parametrize(("code", "subcode"), sorted(META_ERRORS, key=lambda key: (key[0], key[1] or 0)))
def test_the_sandbox_answers_each_code_as_the_client_classifies_it(code: int, subcode: int | None) -> None:
    row = META_ERRORS[(code, subcode)]
    spec = graph_error(code, subcode)
    assert (spec.message, spec.http_status, spec.is_transient) == (row.message, row.http_status, row.is_transient) \
        or (subcode is None and (code, spec.error_subcode) in META_ERRORS)  # a bare code Meta sends with a subcode
    error = classify_graph_error(spec.http_status, spec.to_body("trace"))
    assert type(error) is ERROR_OF_KIND[row.kind]
    assert isinstance(error, TransientGraphError) is row.retry


def test_a_subcode_names_its_kind_whatever_code_carries_it() -> None:
    assert meta_error(200, 2018278) is META_ERRORS[(10, 2018278)]
    assert meta_error(2018278) is META_ERRORS[(10, 2018278)]  # a subcode written where the code goes
    assert meta_error(100, 12345) is META_ERRORS[(100, None)]
    assert meta_error(99999) is None


def test_an_unknown_code_is_permanent_in_both() -> None:
    spec = graph_error(99999)
    assert (spec.http_status, spec.is_transient) == (400, False)
    assert type(classify_graph_error(spec.http_status, spec.to_body("trace"))) is PermanentGraphError
