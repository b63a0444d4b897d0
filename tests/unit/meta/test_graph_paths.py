"""Ids that go into Graph API paths with the page's token (meta/graph.py): a public reply's comment id must be Meta's
shape (digits joined by `_`), else it is refused before any request, so no `../` or `?` reaches another path."""

from __future__ import annotations

import pytest

from core.settings import DEFAULT_GRAPH_API_VERSION
from meta.errors import PermanentGraphError
from meta.graph import GraphClient, GraphRequest, GraphResponse

PAGE = "104523456789012"


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[GraphRequest] = []

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.sent.append(request)
        return GraphResponse(200, {"id": "880011223344_99"})

    async def close(self) -> None:
        return None


async def test_a_public_reply_goes_to_the_comments_edge_of_the_comment() -> None:
    transport = RecordingTransport()
    client = GraphClient({PAGE: "token"}, transport=transport)

    answer = await client.reply_to_comment(PAGE, "880011223344_120000000001", "¡Te escribimos!")

    assert answer == {"id": "880011223344_99"}
    assert [(r.method, r.path, r.json_body) for r in transport.sent] == [
        ("POST", f"/{DEFAULT_GRAPH_API_VERSION}/880011223344_120000000001/comments", {"message": "¡Te escribimos!"})]


@pytest.mark.parametrize("comment_id", ["../me/messages", "1/comments", "1?fields=access_token", "1#x", "", "me",
                                        "1_", "１２", "1 2"])
async def test_a_comment_id_that_is_not_metas_shape_never_reaches_a_path(comment_id: str) -> None:
    transport = RecordingTransport()
    client = GraphClient({PAGE: "token"}, transport=transport)

    with pytest.raises(PermanentGraphError, match="not a Graph API comment id"):
        await client.reply_to_comment(PAGE, comment_id, "hola")

    assert transport.sent == []


@pytest.mark.parametrize("post_id", ["../me", "1?fields=access_token", "x"])
async def test_a_post_id_that_is_not_metas_shape_is_not_read(post_id: str) -> None:
    transport = RecordingTransport()
    client = GraphClient({PAGE: "token"}, transport=transport)

    with pytest.raises(PermanentGraphError, match="not a Graph API post id"):
        await client.get_post(PAGE, post_id)
    await client.get_post(PAGE, f"{PAGE}_880011223344")

    assert [request.path for request in transport.sent] == [f"/{DEFAULT_GRAPH_API_VERSION}/{PAGE}_880011223344"]
