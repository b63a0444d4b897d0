"""The contacts store on each of its databases (SQLite, PostgreSQL), for the contract suites of this folder."""

from __future__ import annotations

from contacts.store import open_contacts_store
from tests.support.postgres import store_fixture, url_fixture

url = url_fixture("contacts")
store = store_fixture(open_contacts_store)
