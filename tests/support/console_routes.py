"""Who may call each route of the app: the table the route tests (unit and integration) hold the app to.

A route missing here fails those tests until someone decides who may call it.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

PAGE = "100000000000001"

AGENTS = frozenset({"admin", "agent"})
EDITORS = frozenset({"admin", "editor"})
EVERYONE = frozenset({"admin", "agent", "editor"})
ADMINS = frozenset({"admin"})

# Reachable without logging in, in every environment. (Meta's webhook is the webhook process's: its own table is
# connectors/webhook_server.py ROUTES, held to it by tests/unit/connectors/test_webhook_server.py.)
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/api/console/login"),
    ("GET", "/console/assets/{name}"),  # the login page's CSS and JavaScript
}

# Machine clients with the service token (Authorization: Bearer BOT_SERVICE_TOKEN) only.
SERVICE_TOKEN_ONLY = {
    ("POST", "/api/outbox"),
    ("GET", "/api/outbox"),
    ("GET", "/api/outbox/alerts"),
    ("GET", "/api/outbox/pages/{page_id}"),
    ("POST", "/api/outbox/pages/{page_id}/resume"),
    ("GET", "/api/outbox/{message_id}"),
    ("POST", "/api/outbox/{message_id}/cancel"),
    ("POST", "/api/outbox/{message_id}/retry"),
    ("POST", "/internal/handoff/pause"),
    ("POST", "/internal/handoff/user-message"),
    ("GET", "/internal/handoff/state"),
    ("POST", "/internal/handoff/reply"),
    ("POST", "/internal/handoff/resume"),
    ("POST", "/internal/referrals"),
    ("POST", "/internal/csat/answer"),
}

# People, by role (and whether the service token is accepted too).
ROLES: dict[tuple[str, str], tuple[frozenset[str], bool]] = {
    ("POST", "/console/logout"): (EVERYONE, False),
    ("GET", "/console"): (EVERYONE, False),
    ("GET", "/console/inbox"): (AGENTS, False),
    ("GET", "/console/conversations/{conversation_id}"): (AGENTS, False),
    ("GET", "/console/snippets"): (AGENTS, False),
    ("GET", "/console/events"): (AGENTS, False),
    ("GET", "/console/knowledge"): (EDITORS, False),
    ("POST", "/api/console/logout"): (EVERYONE, False),
    ("GET", "/api/console/me"): (EVERYONE, False),
    ("GET", "/api/console/agents"): (AGENTS, False),
    ("GET", "/api/console/conversations"): (AGENTS, True),
    ("GET", "/api/console/inbox"): (AGENTS, True),  # every conversation (console/inbox.py)
    ("GET", "/api/console/conversations/{conversation_id}"): (AGENTS, True),
    ("POST", "/api/console/conversations/{conversation_id}/reply"): (AGENTS, False),
    ("POST", "/api/console/conversations/{conversation_id}/attachment"): (AGENTS, False),  # console/attachments.py
    ("GET", "/api/console/attachments/{file_id}"): (AGENTS, False),  # a file sent from the console
    ("POST", "/api/console/conversations/{conversation_id}/reply/preview"): (AGENTS, False),
    ("POST", "/api/console/conversations/{conversation_id}/assign"): (AGENTS, False),
    ("POST", "/api/console/conversations/{conversation_id}/pause"): (AGENTS, False),
    ("POST", "/api/console/conversations/{conversation_id}/close"): (AGENTS, False),
    ("GET", "/api/console/snippets"): (AGENTS, False),
    ("PUT", "/api/console/snippets/{name}"): (AGENTS, False),
    ("POST", "/api/console/snippets/preview"): (AGENTS, False),
    ("DELETE", "/api/console/snippets/{name}"): (AGENTS, False),
    ("GET", "/api/console/knowledge"): (EDITORS, True),
    ("GET", "/api/console/knowledge/live/source"): (EDITORS, True),
    ("POST", "/api/console/knowledge/drafts"): (EDITORS, True),
    ("POST", "/api/console/knowledge/try"): (EDITORS, True),
    ("POST", "/api/console/knowledge/publish"): (EDITORS, True),
    ("POST", "/api/console/knowledge/rollback"): (EDITORS, True),
    ("GET", "/console/links"): (ADMINS, False),
    ("GET", "/api/console/links"): (ADMINS, True),
    ("POST", "/api/console/links"): (ADMINS, True),
    ("PATCH", "/api/console/links/{link_id}"): (ADMINS, False),
    ("GET", "/api/console/links/{link_id}/qr.{fmt}"): (ADMINS, True),
    ("PUT", "/api/console/links/usernames/{page_id}"): (ADMINS, False),
    ("GET", "/console/comments"): (ADMINS, False),
    ("GET", "/api/console/comments/pages/{page_id}/rules"): (ADMINS, True),
    ("POST", "/api/console/comments/pages/{page_id}/rules"): (ADMINS, True),
    ("PUT", "/api/console/comments/pages/{page_id}/order"): (ADMINS, True),
    ("GET", "/api/console/comments/pages/{page_id}/settings"): (ADMINS, True),
    ("PUT", "/api/console/comments/pages/{page_id}/settings"): (ADMINS, True),
    ("GET", "/api/console/comments/pages/{page_id}/recent"): (ADMINS, True),
    ("GET", "/api/console/comments/pages/{page_id}/counts"): (ADMINS, True),
    ("GET", "/api/console/comments/rules/{rule_id}"): (ADMINS, True),
    ("PUT", "/api/console/comments/rules/{rule_id}"): (ADMINS, True),
    ("PUT", "/api/console/comments/rules/{rule_id}/enabled"): (ADMINS, True),
    ("DELETE", "/api/console/comments/rules/{rule_id}"): (ADMINS, True),
    ("GET", "/console/page-profile"): (ADMINS, False),
    ("GET", "/api/console/page-profile"): (ADMINS, True),
    ("PUT", "/api/console/page-profile"): (ADMINS, True),
    ("POST", "/api/console/page-profile/apply"): (ADMINS, True),
    ("GET", "/api/console/page-profile/live"): (ADMINS, True),
    ("GET", "/console/contacts"): (AGENTS, False),
    ("GET", "/console/contacts/{page_id}/{psid}"): (AGENTS, False),
    ("GET", "/api/console/contacts"): (AGENTS, True),
    ("GET", "/api/console/contacts/{page_id}/{psid}"): (AGENTS, True),
    ("POST", "/api/console/contacts/{page_id}/{psid}/tags"): (AGENTS, True),
    ("DELETE", "/api/console/contacts/{page_id}/{psid}/tags/{tag}"): (AGENTS, True),
    ("POST", "/api/console/contacts/{page_id}/{psid}/tags/remove"): (AGENTS, True),
    ("PATCH", "/api/console/contacts/{page_id}/{psid}/fields"): (AGENTS, True),
    ("GET", "/api/console/contacts/{page_id}/{psid}/notes"): (AGENTS, True),
    ("POST", "/api/console/contacts/{page_id}/{psid}/notes"): (AGENTS, True),
    ("GET", "/api/console/tags"): (AGENTS, True),
    ("GET", "/api/console/contacts/export.csv"): (ADMINS, True),
    ("POST", "/api/console/contacts/import"): (ADMINS, True),
    # «Transmisiones» (console/broadcasts.py): admins, and the service token over the API.
    ("GET", "/console/broadcasts"): (ADMINS, False),
    ("GET", "/console/broadcasts/new"): (ADMINS, False),
    ("GET", "/console/broadcasts/{broadcast_id}"): (ADMINS, False),
    ("GET", "/console/broadcasts/{broadcast_id}/edit"): (ADMINS, False),
    ("GET", "/api/console/broadcasts"): (ADMINS, True),
    ("POST", "/api/console/broadcasts"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/dry-run"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/images"): (ADMINS, True),
    ("GET", "/api/console/broadcasts/{broadcast_id}"): (ADMINS, True),
    ("PUT", "/api/console/broadcasts/{broadcast_id}"): (ADMINS, True),
    ("DELETE", "/api/console/broadcasts/{broadcast_id}"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/{broadcast_id}/dry-run"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/{broadcast_id}/send"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/{broadcast_id}/cancel"): (ADMINS, True),
    ("GET", "/api/console/broadcasts/{broadcast_id}/report"): (ADMINS, True),
    ("GET", "/api/console/broadcasts/{broadcast_id}/failed.csv"): (ADMINS, True),
    ("POST", "/api/console/broadcasts/{broadcast_id}/retry-failed"): (ADMINS, True),
    # «Preguntas sin respuesta» (console/unanswered.py): editors and admins, and the service token over the API.
    ("GET", "/console/unanswered"): (EDITORS, False),
    ("GET", "/console/unanswered/{group_id}"): (EDITORS, False),
    ("GET", "/api/console/unanswered"): (EDITORS, True),
    ("GET", "/api/console/unanswered/{group_id}"): (EDITORS, True),
    ("POST", "/api/console/unanswered/{group_id}/add-to-entry"): (EDITORS, True),
    ("POST", "/api/console/unanswered/{group_id}/new-entry"): (EDITORS, True),
    ("POST", "/api/console/unanswered/{group_id}/dismiss"): (EDITORS, True),
    # «Sugerencias» (learning from use, console/unanswered.py): editors and admins; the agents' entry picker.
    ("GET", "/console/unanswered/proposals"): (EDITORS, False),
    ("GET", "/api/console/unanswered/proposals"): (EDITORS, True),
    ("POST", "/api/console/unanswered/proposals/{proposal_id}/accept"): (EDITORS, True),
    ("POST", "/api/console/unanswered/proposals/{proposal_id}/reject"): (EDITORS, True),
    ("GET", "/api/console/entries"): (AGENTS, False),  # «Responder con una entrada»
    # Suggested ways of asking (console/paraphrases.py): editors and admins, and the service token over the API.
    ("GET", "/console/knowledge/paraphrases"): (EDITORS, False),
    ("GET", "/api/console/knowledge/paraphrases"): (EDITORS, True),
    ("POST", "/api/console/knowledge/paraphrases/jobs"): (EDITORS, True),
    ("GET", "/api/console/knowledge/paraphrases/jobs/{job_id}"): (EDITORS, True),
    ("POST", "/api/console/knowledge/paraphrases/{paraphrase_id}/decision"): (EDITORS, True),
    ("POST", "/api/console/knowledge/paraphrases/entry-decision"): (EDITORS, True),
    ("POST", "/api/console/knowledge/paraphrases/draft"): (EDITORS, True),
    # «Reportes» (console/reports.py): admins, editors (the knowledge part), and the service token over the API.
    ("GET", "/console/reports"): (EDITORS, False),
    ("GET", "/api/console/reports"): (EDITORS, True),
    ("GET", "/api/console/reports/{table}.csv"): (EDITORS, True),
    ("GET", "/api/console/reports/charts/{chart}.svg"): (EDITORS, True),
}

# Development only (BOT_ENV=production does not mount them): the Graph API sandbox, its chat, the API docs.
DEVELOPMENT_ONLY_OPEN_PREFIXES = ("/sandbox/", "/{version:graph_version}/", "/docs", "/redoc", "/openapi.json")

PRODUCTION = {
    "environment": "production",
    "app_secret": "3b1f0c9d8e7a6b5c4d3e2f1a0b9c8d7e",
    "verify_token": "verify-token-for-tests-7Qp2xZr9",
    "service_token": "service-token-for-tests-Kd83hFq1-0001",
    "rasa_token": "rasa-token-for-tests-Hq83kd9-000000001",
    "action_server_token": "action-token-for-tests-Zp41mQw8-00000001",
    "answers_secret": "answers-key-for-tests-Vb72nLs5-000000001",
    "page_tokens": {PAGE: "fake-page-token-for-tests-0001"},
    "app_id": "1517776481860111",
    "graph_api_base": "https://graph.facebook.com",
}

def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for context in iter_route_contexts(app.routes):
        for method in getattr(context.original_route, "methods", None) or ():
            found.add((method, context.path))
    return found


def concrete(path: str, conversation_id: str = f"{PAGE}:u1") -> str:
    values = {"conversation_id": conversation_id, "name": "console.css", "message_id": "1", "page_id": PAGE,
              "version": "v21.0", "node": "me", "link_id": "1", "fmt": "png",
              "rule_id": "1", "psid": "u1", "tag": "vip", "file_id": "0" * 64, "broadcast_id": "1",
              "group_id": "1", "table": "atencion", "chart": "atencion", "job_id": "1",
              "paraphrase_id": "1", "proposal_id": "1"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


def is_development_only(path: str) -> bool:
    return path.startswith(DEVELOPMENT_ONLY_OPEN_PREFIXES)


def unknown_routes(routes: set[tuple[str, str]]) -> list[tuple[str, str]]:
    known = PUBLIC | SERVICE_TOKEN_ONLY | set(ROLES)
    return sorted(route for route in routes - known if not is_development_only(route[1]))

