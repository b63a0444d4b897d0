"""`python -m knowledge_matrix paraphrase`: ask the GPT fallback's model for extra ways of asking for the live
version's entries, with a progress bar; the proposals wait in the paraphrase store for an editor's review in the
console («Formas de preguntar sugeridas»). Without an LLM key nothing is sent (exit 2)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from core.settings import SettingsError, load_settings
from knowledge_matrix.embedders import shared_embedder
from knowledge_matrix.errors import LLMSettingsError
from knowledge_matrix.llm.client import OpenAIChatClient
from knowledge_matrix.llm.settings import llm_settings_from
from knowledge_matrix.paraphrase_store import open_paraphrase_store
from knowledge_matrix.paraphrases import BatchDone, limits_from, run_job
from knowledge_matrix.publish import current_version, load_version

EXIT_OK = 0
EXIT_FAILED = 2
OFF_ES = ("Sin LLM_API_KEY (la misma clave de la respuesta con GPT) no se piden sugerencias: no se envía nada a "
          "ningún servidor.")


def _now() -> datetime:
    return datetime.now(UTC)


def run(args: argparse.Namespace, out: TextIO, err: TextIO, *, embedder_for: Any = shared_embedder) -> int:
    try:
        settings = load_settings(overrides={"BOT_DATA_DIR": args.data_dir} if args.data_dir else None)
    except SettingsError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
    if not settings.llm_api_key.strip():
        err.write(OFF_ES + "\n")
        return EXIT_FAILED
    data_dir = Path(settings.data_dir)
    live = current_version(data_dir)
    if live is None:
        err.write("Todavía no hay una matriz publicada: publíquela primero.\n")
        return EXIT_FAILED
    limits = limits_from(settings)
    if args.max_entries:
        limits = replace(limits, max_entries=min(limits.max_entries, args.max_entries))
    try:
        client = OpenAIChatClient(replace(llm_settings_from(settings), max_tokens=limits.reply_tokens,
                                          timeout_seconds=limits.timeout_seconds))
    except LLMSettingsError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
    knowledge = load_version(data_dir, live.id, embedder_for)
    entries = [entry for entry in knowledge.entries if not args.entry or entry.id in set(args.entry)]
    store = open_paraphrase_store(args.store_url or settings.store_url("paraphrases"))
    try:
        running = store.running_job()
        if running is not None:
            err.write(f"Ya hay una generación en curso (la {running.id}): espere a que termine.\n")
            return EXIT_FAILED
        total = min(len(entries), limits.max_entries)
        job = store.start_job(live.id, args.by, total, _now())
        failure = asyncio.run(_run(store, job, live.id, knowledge, entries, client, limits, settings.llm_model,
                                   total, err, args.no_progress))
        ended = store.job(job.id)
    finally:
        store.close()
    assert ended is not None
    out.write(f"Generación {ended.id} sobre la versión {live.id}: {ended.done_entries} de {ended.total_entries} "
              f"entradas, {ended.proposed} propuestas por revisar, {ended.filtered} descartadas. Revíselas en la "
              "consola: Matriz de Conocimientos › Formas de preguntar sugeridas.\n")
    if ended.error_es:
        (err if failure else out).write(ended.error_es + "\n")
    return EXIT_FAILED if failure else EXIT_OK


async def _run(store: Any, job: Any, version: str, knowledge: Any, entries: Any, client: OpenAIChatClient,
               limits: Any, model: str, total: int, err: TextIO, quiet: bool) -> Any:
    from tqdm import tqdm

    with tqdm(total=total, unit="entrada", file=err, disable=quiet, desc="Sugerencias") as bar:
        def progress(done: BatchDone) -> None:
            bar.update(done.done_entries - bar.n)

        try:
            return await run_job(store, job, version, knowledge, entries, client, limits, clock=_now, model=model,
                                 on_progress=progress)
        finally:
            await client.aclose()


def add_command(commands: Any) -> None:
    """The `paraphrase` subcommand on the package's parser (knowledge_matrix/cli.py)."""
    command = commands.add_parser("paraphrase", help="ask the LLM for extra ways of asking (needs LLM_API_KEY)")
    command.add_argument("--data-dir", help="the bot's data directory (default: $BOT_DATA_DIR or var/)")
    command.add_argument("--entry", action="append", help="only this entry (repeat for several)")
    command.add_argument("--max-entries", type=int, help="at most this many entries (and PARAPHRASES_MAX_ENTRIES)")
    command.add_argument("--store-url", help="the paraphrase store (default: PARAPHRASES_DB_URL or the data dir's)")
    command.add_argument("--by", default="cli", help="who asked (kept with the job)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(run=run)

