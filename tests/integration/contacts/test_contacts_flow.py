"""Contacts through the real stack (the session's Rasa + action server + app): a person writes to the page (a signed
webhook → the webhook process → the Rasa channel, which records that they wrote in the outbox) and the app's contacts
sync makes them a contact with the Graph sandbox's profile name (GET /{version}/{psid} over real HTTP); one who came
by an m.me link has that campaign; a PSID the sandbox refuses keeps the PSID and says why."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import closing

from bot.stack import Stack
from contacts.model import FETCHED, NO_PERMISSION, Contact
from contacts.store import open_contacts_store
from sandbox import simulate
from sandbox.graph import sandbox_profile
from tests.support.stack import PAGE_ID, Messenger


def contact_when(stack: Stack, psid: str, ready: Callable[[Contact], bool], timeout: float = 30) -> Contact:
    """The contact as the app's store has it once `ready` holds (the sync runs every CONTACTS_SYNC_SECONDS)."""
    deadline = time.monotonic() + timeout
    seen: Contact | None = None
    while time.monotonic() < deadline:
        with closing(open_contacts_store(stack.data_dir / "contacts.sqlite3")) as store:
            seen = store.get(PAGE_ID, psid)
        if seen is not None and ready(seen):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"contact {psid} not ready within {timeout} s: {seen}")


def test_a_person_who_writes_becomes_a_contact_with_the_sandbox_profile(messenger: Messenger, stack: Stack) -> None:
    user, ref = f"contacto-{uuid.uuid4().hex[:8]}", f"promo_{uuid.uuid4().hex[:6]}"
    answer = messenger.deliver(simulate.webhook_body(PAGE_ID, [simulate.referral(PAGE_ID, user, ref)]))
    assert answer.status_code == 200
    assert messenger.say(user, "hola").status_code == 200
    refused = f"noperm-{uuid.uuid4().hex[:8]}"
    assert messenger.say(refused, "hola").status_code == 200

    contact = contact_when(stack, user, lambda c: c.profile_status == FETCHED and c.campaign is not None)
    profile = sandbox_profile(user)
    assert contact.display_name == f"{profile['first_name']} {profile['last_name']}"
    assert (contact.locale, contact.campaign, contact.profile_pic) == ("es_LA", ref, profile["profile_pic"])
    assert contact.last_user_message_at is not None and contact.first_seen_at <= contact.last_user_message_at

    without = contact_when(stack, refused, lambda c: c.profile_status == NO_PERMISSION)
    assert without.display_name == f"Sin nombre (PSID …{refused[-4:]})"
    assert without.profile_reason is not None and "permiso" in without.profile_reason
