"""What the comment journal tells the reports (issue 14): per reply rule, how many comments it matched in a period
and what became of its replies. The journal's own rows are `comments.journal.StoredComment`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuleCount:
    """One reply rule over a period (the comments received in it): `matched` comments it matched (replied or held
    back, e.g. one reply per person and post a day), `private` and `public` replies queued, `replied` private
    replies that reached the person (sent, whether or not Meta named the PSID), `started` conversations (distinct
    people who then wrote to the page)."""

    rule_id: str
    matched: int
    replied: int
    private: int = 0
    public: int = 0
    started: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "matched": self.matched, "replied": self.replied, "private": self.private,
                "public": self.public, "started": self.started}
