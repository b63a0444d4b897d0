from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from bot.stack import Stack
from contacts.store import ContactsStore, open_contacts_store
from core.settings import Settings
from tests.conftest import require_or_skip

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download). Module scope: Playwright's sync
    API keeps an event loop running while open, which asyncio tests elsewhere must not see."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    require_or_skip(executable is not None, "Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def contacts(stack: Stack) -> Iterator[ContactsStore]:
    """The stack's contacts store, opened beside the app (the browser tests seed and check people through it)."""
    settings = Settings(data_dir=stack.data_dir, contacts_db_url=stack.env.get("CONTACTS_DB_URL", ""))
    store = open_contacts_store(settings.store_url("contacts"))
    yield store
    store.close()
