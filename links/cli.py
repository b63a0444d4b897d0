"""`python -m links …` (also `python -m bot links …`): m.me links from the command line.

    python -m links create "Menú en las mesas" --ref menu_mesas --entry menu   # prints the link's URL
    python -m links list                                                        # links, their counters
    python -m links qr menu_mesas --png menu.png --svg menu.svg                 # the QR code as files
    python -m links off menu_mesas / on menu_mesas                              # switch a link off or on
    python -m links username 100000000000001 MiNegocioEC                       # m.me/MiNegocioEC?ref=…

Works on the store the app uses (`LINKS_DB_URL`, else `<data_dir>/links.sqlite3`). Bad input is said in Spanish
on stderr with exit status 1 (2 for a store or settings that cannot be opened).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from core.postgres import DatabaseUnavailable
from core.settings import SettingsError, load_settings
from links.intents import bot_intents
from links.model import (
    Link,
    LinkInvalid,
    check_page_id,
    check_page_username,
    check_start_intent,
    parse_new_link,
)
from links.qr import png_bytes, svg_bytes
from links.store import LinksStore, RefInUse, open_links_store


class CliError(Exception):
    """Bad input: the message is for the person at the terminal (Spanish)."""


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    links = commands.add_parser("links", help="m.me links and their QR codes")
    _add_commands(links)


def _add_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="links_command", required=True)
    create = actions.add_parser("create", help="create a named link and print its URL")
    create.add_argument("name", help="what the console shows, e.g. \"Menú en las mesas\"")
    create.add_argument("--ref", help="the ref parameter (default: made from the name)")
    create.add_argument("--page", help="the page id (default: the only configured page)")
    start = create.add_mutually_exclusive_group()
    start.add_argument("--intent", help="start this intent of the bot when someone arrives by the link")
    start.add_argument("--entry", help="answer this knowledge-matrix entry (its id) when someone arrives")
    create.add_argument("--by", default="cli", help="who created it (default: cli)")
    listing = actions.add_parser("list", help="list the links with their counters")
    listing.add_argument("--page", help="only this page")
    qr = actions.add_parser("qr", help="write a link's QR code as PNG and/or SVG files")
    qr.add_argument("link", help="the link's id or ref")
    qr.add_argument("--page", help="the page id (when two pages use the ref)")
    qr.add_argument("--png", type=Path, help="write the PNG here")
    qr.add_argument("--svg", type=Path, help="write the SVG here")
    for name, text in (("off", "switch a link off (referrals are still counted, nothing starts)"),
                       ("on", "switch a link on again")):
        switch = actions.add_parser(name, help=text)
        switch.add_argument("link", help="the link's id or ref")
        switch.add_argument("--page", help="the page id (when two pages use the ref)")
    username = actions.add_parser("username", help="the page's username, for m.me/<username>?ref=… URLs")
    username.add_argument("page_id")
    username.add_argument("username")
    parser.set_defaults(func=run)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _default_page(pages: list[str], page: str | None) -> str:
    if page:
        return check_page_id(page)
    if len(pages) == 1:
        return pages[0]
    raise CliError("hay varias páginas configuradas: indique una con --page")


def find_link(store: LinksStore, reference: str, page: str | None) -> Link:
    """A link by its id (digits) or its ref (on `page` when given)."""
    matches = [link for link in store.links(page)
               if str(link.id) == reference or link.ref == reference]
    if not matches:
        raise CliError(f"no hay ningún enlace con id o ref «{reference}»")
    if len(matches) > 1:
        raise CliError(f"varias páginas usan la ref «{reference}»: indique la página con --page")
    return matches[0]


def _create(store: LinksStore, args: argparse.Namespace, pages: list[str], out: TextIO) -> None:
    page = _default_page(pages, args.page)
    if page not in pages:
        raise CliError(f"la página {page} no está configurada (MESSENGER_PAGES)")
    start = {"intent": args.intent} if args.intent else {"entry_id": args.entry} if args.entry else None
    new = parse_new_link({"page_id": page, "name": args.name, "ref": args.ref, "start": start})
    intents = bot_intents()
    if intents is not None:
        check_start_intent(new.start, intents)
    link = store.create(new, args.by, _now())
    print(f"Enlace «{link.name}» creado: {link.url(store.page_usernames().get(link.page_id))}", file=out)


def _list(store: LinksStore, args: argparse.Namespace, out: TextIO) -> None:
    links = store.links(args.page)
    if not links:
        print("Todavía no hay enlaces.", file=out)
        return
    counts, usernames = store.counts(args.page), store.page_usernames()
    for link in links:
        used = counts.get(link.id)
        state = "" if link.enabled else "  (apagado)"
        start = link.start.label_es() if link.start else "sin inicio"
        print(f"{link.id:>4}  {link.name}  ref={link.ref}  {start}  "
              f"escaneos/clics={used.referrals if used else 0} conversaciones_iniciadas={used.people if used else 0}  "
              f"{link.url(usernames.get(link.page_id))}{state}", file=out)


def _qr(store: LinksStore, args: argparse.Namespace, out: TextIO) -> None:
    if args.png is None and args.svg is None:
        raise CliError("indique dónde guardar el código QR: --png ARCHIVO y/o --svg ARCHIVO")
    link = find_link(store, args.link, args.page)
    url = link.url(store.page_usernames().get(link.page_id))
    for path, data in ((args.png, lambda: png_bytes(url)), (args.svg, lambda: svg_bytes(url, link.name))):
        if path is not None:
            _write(path, data)
            print(f"Código QR de «{link.name}» guardado en {path} ({url})", file=out)


def _write(path: Path, data: Callable[[], bytes]) -> None:
    try:
        path.write_bytes(data())
    except OSError as exc:
        raise CliError(f"no se pudo escribir {path}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        settings = load_settings()
        store = open_links_store(settings.store_url("links"))
    except (SettingsError, DatabaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pages = sorted(settings.page_tokens)
    try:
        command = args.links_command
        if command == "create":
            _create(store, args, pages, out)
        elif command == "list":
            _list(store, args, out)
        elif command == "qr":
            _qr(store, args, out)
        elif command in ("off", "on"):
            link = store.set_enabled(find_link(store, args.link, args.page).id, command == "on", "cli", _now())
            print(f"Enlace «{link.name}» {'encendido' if link.enabled else 'apagado'}.", file=out)
        else:
            store.set_page_username(check_page_id(args.page_id), check_page_username(args.username), _now())
            print(f"Los enlaces de la página {args.page_id} usan https://m.me/{args.username.lstrip('@')}", file=out)
        return 0
    except LinkInvalid as exc:
        print(f"error: {exc.message_es}", file=sys.stderr)
        return 1
    except RefInUse as exc:
        print(f"error: la página {exc.page_id} ya tiene un enlace con la ref «{exc.ref}»", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m links", description="m.me links and their QR codes")
    _add_commands(parser)
    args: Any = parser.parse_args(argv)
    return int(args.func(args))
