"""The pause notice and the snippets' preview in a real browser (Debian's Chromium) against the real stack.

An agent opts in from the console's header («Avisarme cuando una conversación espera a una persona»: the browser
asks for notification permission, granted here) while on the snippets page, where the preview fills `{nombre}` for
a sample contact. Their own pause (another session of the same agent) gives no notice; an admin pausing another
conversation does: the sound plays and a desktop notification names the customer and the reason, and clicking it
opens the conversation. `window.Notification` and `HTMLMediaElement.play` are wrapped by an init script to observe
them (a headless browser shows and plays nothing)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from playwright.sync_api import expect

from bot.stack import Stack
from handoff.model import conversation_id_of
from sandbox.graph import sandbox_profile
from tests.support.console_client import ConsoleSession
from tests.support.stack import PAGE_ID, Messenger

LIVE_TIMEOUT = 30_000

OBSERVE = """
(() => {
  window.__notices = [];
  window.__sounds = [];
  const Real = window.Notification;
  class Observed extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notices.push({ title, body: options.body, n: this });
    }
  }
  window.Notification = Observed;
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    window.__sounds.push(this.src);
    return play.call(this).catch(() => {});
  };
})();
"""


def known_contact(messenger: Messenger, session: ConsoleSession, user: str) -> str:
    """Make the user write to the page and wait until the contacts' sync has their name."""
    assert messenger.say(user, "hola").status_code == 200
    first_name = sandbox_profile(user)["first_name"]
    url = f"/api/console/contacts/{PAGE_ID}/{user}"
    messenger.wait_for(lambda: session.get(url).status_code == 200
                       and session.get(url).json()["contact"]["first_name"] == first_name, 30, "the contact's name")
    return str(session.get(url).json()["contact"]["display_name"])


def test_an_agent_who_opted_in_hears_of_a_pause_by_someone_else(browser: Any, stack: Stack) -> None:
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=stack.app_url)
    context.add_init_script(OBSERVE)
    page = context.new_page()
    messenger = Messenger(stack)
    own_session, admin = ConsoleSession(stack.app_url, "agente"), ConsoleSession(stack.app_url, "admin")
    mine, theirs = str(uuid.uuid4().int)[:16], str(uuid.uuid4().int)[:16]
    try:
        name = known_contact(messenger, admin, theirs)
        known_contact(messenger, admin, mine)

        page.goto(f"{stack.app_url}/console/login?next=/console/snippets")
        page.fill("#username", "agente")
        page.fill("#password", "agente-demo")
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{stack.app_url}/console/snippets")

        # The preview fills a snippet's variables for the sample contact and names an unknown one.
        page.fill("#snippet-text", "Hola {nombre}, ¿sigue en {campo.ciudad}? {saludo}")
        expect(page.locator("#snippet-preview")).to_have_text("Hola María José, ¿sigue en Cuenca? {saludo}")
        expect(page.locator("#snippet-warning")).to_contain_text("«{saludo}» no es una variable")

        toggle = page.get_by_label("Avisarme cuando una conversación espera a una persona")
        toggle.check()
        expect(page.locator("#live-status")).to_have_text("En vivo", timeout=LIVE_TIMEOUT)
        assert page.evaluate("localStorage.getItem('ecuabots.aviso-pausa')") == "1"

        # The agent pauses one themselves (another session of theirs): no notice. Then an admin pauses another.
        assert own_session.post(f"/api/console/conversations/{conversation_id_of(PAGE_ID, mine)}/pause").status_code \
            == 200
        theirs_id = conversation_id_of(PAGE_ID, theirs)
        assert admin.post(f"/api/console/conversations/{theirs_id}/pause").status_code == 200

        # (wait_for_function evaluates a string in the page, which the console's CSP forbids: poll from here.)
        messenger.wait_for(lambda: page.evaluate("window.__notices.length") > 0, LIVE_TIMEOUT / 1000, "the notice")
        notices = page.evaluate("window.__notices.map((n) => ({ title: n.title, body: n.body }))")
        assert notices == [{"title": "Una conversación espera a una persona",
                            "body": f"{name}: Un agente pausó el chatbot"}]
        sound = f"{stack.app_url}/console/assets/notice.wav"
        assert page.evaluate("window.__sounds").count(sound) == 2  # a sample on opting in, then the pause
        expect(page.locator("#toast")).to_contain_text(name)

        page.evaluate("window.__notices[0].n.onclick()")
        expect(page).to_have_url(f"{stack.app_url}/console/conversations/{quote(theirs_id, safe='')}")
        expect(page.get_by_label("Avisarme cuando una conversación espera a una persona")).to_be_checked()
    finally:
        for user in (mine, theirs):
            admin.post(f"/api/console/conversations/{conversation_id_of(PAGE_ID, user)}/close",
                       json={"note": "Consulta resuelta"})
        own_session.close()
        admin.close()
        messenger.http.close()
        context.close()
