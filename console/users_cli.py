"""`python -m bot users …`: manage who can log in to the console (add, passwd, role, disable, enable, list).

Passwords are typed at a prompt (twice) or read from the first line of stdin with `--password-stdin`, never
taken as an argument (it would stay in the shell history and the process list).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from console.auth import DEMO_USERS, ROLE_LABELS_ES, Authenticator, UserInputError, check_username, parse_role
from console.store import UnknownUser, open_console_store
from core.postgres import DatabaseUnavailable
from core.settings import Settings, SettingsError, load_settings


def console_logins_hint(settings: Settings) -> str:
    """What `bot run` prints beside the console's address."""
    if settings.is_demo:
        return "(demo users: " + ", ".join(f"{name} / {password}" for name, _, password, _ in DEMO_USERS) + ")"
    return "(add users with: python -m bot users add NAME --role agent)"


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = commands.add_parser("users", help="manage the console's users (admin, agent, editor)")
    actions = users.add_subparsers(dest="users_command", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="admin, agent (agente) or editor")
    add.add_argument("--display-name", help="the name agents see (default: the username)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = actions.add_parser("passwd", help="set a new password (logs the user out everywhere)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    role = actions.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("--role", required=True)
    for name, text in (("disable", "stop a user from logging in (ends their sessions)"), ("enable", "allow again")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name")
    actions.add_parser("list", help="list the users")
    users.set_defaults(func=run)


def _password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Contraseña: ")
    if getpass.getpass("Repita la contraseña: ") != first:
        raise UserInputError("las contraseñas no coinciden")
    return first


def run(args: argparse.Namespace, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    stdin, out = stdin or sys.stdin, out or sys.stdout
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store = open_console_store(settings.console_store_url)
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auth = Authenticator(store, settings)
    try:
        command = args.users_command
        if command == "add":
            check_username(args.name)
            parse_role(args.role)
            user = auth.add_user(args.name, args.role, _password(args, stdin), args.display_name)
            print(f"Usuario «{user.username}» creado con el rol {ROLE_LABELS_ES[user.role]}.", file=out)
        elif command == "passwd":
            store.get_user(check_username(args.name))
            auth.set_password(args.name, _password(args, stdin))
            print(f"Contraseña de «{args.name}» cambiada; sus sesiones abiertas se cerraron.", file=out)
        elif command == "role":
            store.set_role(check_username(args.name), parse_role(args.role), auth.clock())
            print(f"«{args.name}» ahora tiene el rol {ROLE_LABELS_ES[parse_role(args.role)]}.", file=out)
        elif command in ("disable", "enable"):
            store.set_active(check_username(args.name), command == "enable", auth.clock())
            state = "puede entrar" if command == "enable" else "ya no puede entrar (sesiones cerradas)"
            print(f"«{args.name}» {state}.", file=out)
        else:
            for user in store.users():
                state = "" if user.active else "  (desactivado)"
                print(f"{user.username:20s} {ROLE_LABELS_ES[user.role]:8s} {user.display_name}{state}", file=out)
        return 0
    except UserInputError as exc:
        print(f"error: {exc.message_es}", file=sys.stderr)
        return 1
    except UnknownUser:
        print(f"error: no existe el usuario «{args.name}»", file=sys.stderr)
        return 1
    finally:
        store.close()
