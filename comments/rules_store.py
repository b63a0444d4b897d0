"""The comment reply rules' store: each page's rules in order, and the page's comment settings, in a SQLite file or
a PostgreSQL schema (`open_rules_store(settings.store_url("comments"))`, `core.database`).

Numbered migrations and named queries live in `comments/sql/rules/sqlite/` and `comments/sql/rules/postgres/`. The
store keeps what `comments.rules` checked (`parse_rule`); it numbers rules and keeps their order. Synchronous and
thread-safe; async code calls it through a thread (`run_in_threadpool`).

The processor reads `list_rules(page_id)` (in order, disabled ones included: `first_match` skips them) and
`page_settings(page_id)` (the defaults for a page never configured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from comments.rules import (
    CommentMatch,
    PageCommentSettings,
    PostScope,
    ReplyContent,
    ReplyRule,
    RuleError,
    RuleInvalid,
)
from core.database import DatabaseStore, moment, stored_time

SQL_DIR = Path(__file__).parent / "sql" / "rules"  # sqlite/ and postgres/: numbered migrations and queries.sql


class RuleNotFound(RuleError, LookupError):
    reason_code = "rule_not_found"

    def __init__(self, rule_id: int) -> None:
        super().__init__(f"no reply rule {rule_id}")
        self.rule_id = rule_id
        self.message_es = f"No existe la regla {rule_id}; quizás alguien la borró. Recargue la página."


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _rule(row: Any) -> ReplyRule:
    posts = json.loads(row["posts_json"])
    comments = json.loads(row["comments_json"])
    reply = json.loads(row["reply_json"])
    return ReplyRule(
        id=int(row["id"]),
        page_id=row["page_id"],
        name=row["name"],
        position=int(row["position"]),
        enabled=bool(row["enabled"]),
        posts=PostScope(posts["mode"], tuple(posts.get("post_ids", ())), tuple(posts.get("post_words", ()))),
        comments=CommentMatch(comments["mode"], tuple(comments.get("keywords", ()))),
        reply=ReplyContent(reply["mode"], reply.get("message")),
        public_replies=tuple(json.loads(row["public_replies_json"])),
        created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]),
        updated_by=row["updated_by"],
    )


def _columns(rule: ReplyRule) -> dict[str, Any]:
    return {
        "page_id": rule.page_id,
        "name": rule.name,
        "enabled": bool(rule.enabled),
        "posts_json": _json(rule.posts.to_dict()),
        "comments_json": _json(rule.comments.to_dict()),
        "reply_json": _json(rule.reply.to_dict()),
        "public_replies_json": _json(list(rule.public_replies)),
    }


class RulesStore(DatabaseStore):
    """A file path, `sqlite:///path` or `postgresql://…` (schema: the URL's search_path, else "comments")."""

    BACKEND = "comments"
    SQL_DIR = SQL_DIR

    # --- rules -----------------------------------------------------------------------------------

    def list_rules(self, page_id: str) -> list[ReplyRule]:
        """The page's rules in their order (the first that matches wins), switched-off ones included."""
        return [_rule(row) for row in self._db.read("list_rules", {"page_id": page_id})]

    def get_rule(self, rule_id: int) -> ReplyRule:
        rows = self._db.read("get_rule", {"id": int(rule_id)})
        if not rows:
            raise RuleNotFound(rule_id)
        return _rule(rows[0])

    def create_rule(self, rule: ReplyRule, by: str, now: datetime) -> ReplyRule:
        """A new rule, last in its page's order."""
        with self._db.write() as session:
            position = session.execute(self._db.queries["next_position"], {"page_id": rule.page_id}).fetchone()
            row = session.execute(self._db.queries["insert_rule"], {
                **_columns(rule), "position": int(position["position"]), "now": stored_time(now), "by": by,
            }).fetchone()
        return self.get_rule(int(row["id"]))

    def update_rule(self, rule_id: int, rule: ReplyRule, by: str, now: datetime) -> ReplyRule:
        """A rule's new content; its page and position stay (reorder moves it)."""
        current = self.get_rule(rule_id)
        if rule.page_id != current.page_id:
            raise RuleInvalid("page_id", "Una regla no cambia de página: cree una nueva en la otra página.")
        if not self._db.run("update_rule", {**_columns(rule), "id": int(rule_id), "now": stored_time(now),
                                            "by": by}):
            raise RuleNotFound(rule_id)
        return self.get_rule(rule_id)

    def set_enabled(self, rule_id: int, enabled: bool, by: str, now: datetime) -> ReplyRule:
        """Switch a rule on or off; a rule switched off keeps its place in the order."""
        if not self._db.run("set_enabled", {"id": int(rule_id), "enabled": bool(enabled), "now": stored_time(now),
                                            "by": by}):
            raise RuleNotFound(rule_id)
        return self.get_rule(rule_id)

    def delete_rule(self, rule_id: int) -> bool:
        return self._db.run("delete_rule", {"id": int(rule_id)}) > 0

    def reorder(self, page_id: str, rule_ids: Sequence[int], by: str, now: datetime) -> list[ReplyRule]:
        """Put the page's rules in this order. `rule_ids` must name each of the page's rules once (a list read
        before another admin added or deleted one is refused, not half applied)."""
        wanted = [int(rule_id) for rule_id in rule_ids]
        with self._db.write() as session:
            present = [int(row["id"]) for row in
                       session.execute(self._db.queries["list_rules"], {"page_id": page_id}).fetchall()]
            if sorted(wanted) != sorted(present) or len(set(wanted)) != len(wanted):
                raise RuleInvalid("rule_ids", "El orden debe nombrar cada regla de la página una vez; la lista "
                                              "cambió mientras tanto. Recargue la página.")
            for position, rule_id in enumerate(wanted, start=1):
                session.execute(self._db.queries["set_position"], {"id": rule_id, "page_id": page_id,
                                                                   "position": position, "now": stored_time(now),
                                                                   "by": by})
        return self.list_rules(page_id)

    # --- page settings ---------------------------------------------------------------------------

    def page_settings(self, page_id: str) -> PageCommentSettings:
        """The page's comment settings; the defaults when nobody changed them."""
        rows = self._db.read("get_settings", {"page_id": page_id})
        if not rows:
            return PageCommentSettings(page_id)
        row = rows[0]
        score = row["knowledge_min_score"]
        return PageCommentSettings(
            page_id=page_id,
            one_reply_per_person_per_post_per_day=bool(row["one_reply_per_person_per_post_per_day"]),
            knowledge_min_score=float(score) if score is not None else None,
            updated_at=moment(row["updated_at"]),
            updated_by=row["updated_by"],
        )

    def save_page_settings(self, settings: PageCommentSettings, by: str, now: datetime) -> PageCommentSettings:
        self._db.run("upsert_settings", {"page_id": settings.page_id,
                                         "once": bool(settings.one_reply_per_person_per_post_per_day),
                                         "knowledge_min_score": settings.knowledge_min_score,
                                         "now": stored_time(now), "by": by})
        return self.page_settings(settings.page_id)


def open_rules_store(url: Path | str) -> RulesStore:
    """The rules store at `settings.store_url("comments")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return RulesStore(url)

