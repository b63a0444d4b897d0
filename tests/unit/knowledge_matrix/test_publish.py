"""Publishing, rolling back and serving the live version, with the deterministic `HashingEmbedder`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from knowledge_matrix import live as live_module
from knowledge_matrix import publish as publishing
from knowledge_matrix.cli import EXIT_INVALID, EXIT_OK, main
from knowledge_matrix.embedders import HashingEmbedder, shared_embedder
from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.live import LiveKnowledge
from knowledge_matrix.publish import (
    INDEX_DIR,
    POINTER_FILE,
    NothingToRollBackError,
    UnknownVersionError,
    activate,
    current_version,
    knowledge_dir,
    list_versions,
    load_draft,
    publish,
    read_pointer,
    rollback,
    version_dir,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
EMBEDDER = HashingEmbedder(64)
QUESTION = "¿Cuál es el horario de atención?"


def matrix_text(hours: str) -> str:
    return (
        "id,preguntas,respuesta,respuestas rápidas\n"
        f"horario,{QUESTION} | ¿A qué hora abren?,{hours},Pagos => #pagos\n"
        "pagos,¿Qué métodos de pago aceptan?,Tarjeta y transferencia.,\n"
        "envios,¿Hacen envíos a Galápagos?,Sí, por Servientrega.,\n"
    )


BAD = "id,preguntas,respuesta\nhorario,¿Cuál es el horario?,\nhorario,¿Abren el domingo?,No.\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def publish_hours(data_dir: Path, write: Callable[[str, str], Path], hours: str, minutes: int = 0) -> str:
    result = publish(write(f"m{minutes}.csv", matrix_text(hours)), data_dir, NOW + timedelta(minutes=minutes),
                     embedder=EMBEDDER)
    assert result.published and result.version is not None, result.report.render()
    return result.version.id


def hours_answer(live: LiveKnowledge) -> tuple[str | None, str]:
    version = live.refresh()
    assert version is not None
    return version.version, version.knowledge.search(QUESTION, 1)[0].entry.answer


# --- publishing ---------------------------------------------------------------------------------------


def test_publish_keeps_the_version_with_its_source_and_report_and_makes_it_live(
    data_dir: Path, write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    source = write("matriz.csv", matrix_text("De 9 a 18."))

    result = publish(source, data_dir, NOW, by="ana", embedder=EMBEDDER)
    renamed = publish(source, tmp_path / "other", NOW, filename="Matriz julio.xlsx", embedder=EMBEDDER)
    assert renamed.version is not None and renamed.version.filename == "Matriz julio.xlsx"

    assert result.published and result.previous_version is None
    assert result.version is not None
    assert (result.version.id, result.version.published_by, result.version.filename) == ("0001", "ana", "matriz.csv")
    assert (result.version.entry_count, result.version.model_name) == (3, "hashing:64")
    assert result.version.published_datetime == NOW
    directory = version_dir(data_dir, "0001")
    assert (directory / "source.csv").read_bytes() == source.read_bytes()
    assert "La matriz es válida: 3 entrada(s)" in (directory / "report.txt").read_text(encoding="utf-8")
    assert json.loads((directory / "report.json").read_text(encoding="utf-8"))["ok"] is True
    assert (directory / INDEX_DIR / "manifest.json").is_file()
    assert current_version(data_dir) == result.version
    assert list_versions(data_dir) == [result.version]


def test_nothing_published_yet_is_none_everywhere(data_dir: Path) -> None:
    assert read_pointer(data_dir) is None
    assert current_version(data_dir) is None
    assert list_versions(data_dir) == []
    assert LiveKnowledge(data_dir).refresh() is None
    with pytest.raises(NothingToRollBackError):
        rollback(data_dir, NOW)


def test_an_invalid_matrix_is_refused_with_the_report_and_the_live_version_keeps_serving(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    publish_hours(data_dir, write, "De 9 a 18.")
    live = LiveKnowledge(data_dir)
    assert hours_answer(live) == ("0001", "De 9 a 18.")

    refused = publish(write("mala.csv", BAD), data_dir, NOW, embedder=EMBEDDER)

    assert not refused.published and refused.version is None
    assert "fila 2, columna «respuesta»: falta la respuesta." in refused.report.render()
    assert "la versión actual sigue respondiendo" in refused.report.render()
    assert current_version(data_dir) is not None and current_version(data_dir).id == "0001"  # type: ignore[union-attr]
    assert [v.id for v in list_versions(data_dir)] == ["0001"]
    assert hours_answer(live) == ("0001", "De 9 a 18.")


@pytest.mark.parametrize("name", ["no-existe.csv", "viejo.xls"])
def test_a_file_that_cannot_be_read_is_refused_with_one_error(
    data_dir: Path, tmp_path: Path, name: str
) -> None:
    if name.endswith(".xls"):
        (tmp_path / name).write_bytes(b"\xd0\xcf\x11\xe0")
    refused = publish(tmp_path / name, data_dir, NOW, embedder=EMBEDDER)
    assert not refused.published
    assert refused.report.codes() == ["unreadable_file"]
    assert read_pointer(data_dir) is None


def test_rollback_is_undo_and_a_publish_after_it_goes_on_from_there(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    for minute, hours in enumerate(("Uno.", "Dos.", "Tres.")):
        publish_hours(data_dir, write, hours, minute)
    live = LiveKnowledge(data_dir)
    assert hours_answer(live) == ("0003", "Tres.")

    assert rollback(data_dir, NOW, by="ana").id == "0002"
    assert hours_answer(live) == ("0002", "Dos.")
    assert rollback(data_dir, NOW).id == "0001", "twice goes two versions back"
    assert hours_answer(live) == ("0001", "Uno.")
    with pytest.raises(NothingToRollBackError):
        rollback(data_dir, NOW)

    assert publish_hours(data_dir, write, "Cuatro.", 4) == "0004"
    assert read_pointer(data_dir).lineage == ("0001", "0004")  # type: ignore[union-attr]
    assert rollback(data_dir, NOW).id == "0001", "not 0003: that one was rolled back"
    assert [v.id for v in list_versions(data_dir)] == ["0001", "0002", "0003", "0004"], "every version stays"

    assert activate(data_dir, "0003", NOW).id == "0003"
    assert hours_answer(live) == ("0003", "Tres.")
    assert rollback(data_dir, NOW).id == "0001", "after activate, rollback returns to what was live before"
    with pytest.raises(UnknownVersionError):
        activate(data_dir, "0009", NOW)
    with pytest.raises(UnknownVersionError):
        activate(data_dir, "../etc", NOW)
    history = (knowledge_dir(data_dir) / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["action"] for line in history] == [
        "publish", "publish", "publish", "rollback", "rollback", "publish", "rollback", "activate", "rollback",
    ]


# --- the pointer is atomic --------------------------------------------------------------------------


def test_leftovers_of_a_crashed_publish_are_ignored_and_then_cleaned(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    publish_hours(data_dir, write, "De 9 a 18.")
    root = knowledge_dir(data_dir)
    (root / f".{POINTER_FILE}.tmp-deadbeef").write_text('{"version": "0009", "lin', encoding="utf-8")
    staging = root / "versions" / ".0002.staging-deadbeef"
    (staging / INDEX_DIR).mkdir(parents=True)
    (staging / "source.csv").write_text("a medio copiar", encoding="utf-8")

    assert current_version(data_dir).id == "0001"  # type: ignore[union-attr]
    assert [v.id for v in list_versions(data_dir)] == ["0001"]
    assert hours_answer(LiveKnowledge(data_dir)) == ("0001", "De 9 a 18.")

    assert publish_hours(data_dir, write, "De 8 a 17.", 1) == "0002"
    assert sorted(p.name for p in root.iterdir()) == [".lock", POINTER_FILE, "history.jsonl", "versions"]
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["0001", "0002"]


def test_a_crash_before_the_pointer_is_replaced_leaves_the_old_version_live(
    data_dir: Path, write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_hours(data_dir, write, "De 9 a 18.")
    live = LiveKnowledge(data_dir)
    assert hours_answer(live)[0] == "0001"
    real_replace = os.replace

    def crash_on_the_pointer(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if Path(target).name == POINTER_FILE:
            raise OSError("power cut")
        real_replace(source, target)

    monkeypatch.setattr(publishing.os, "replace", crash_on_the_pointer)
    with pytest.raises(OSError, match="power cut"):
        publish_hours(data_dir, write, "De 8 a 17.", 1)
    monkeypatch.setattr(publishing.os, "replace", real_replace)

    assert current_version(data_dir).id == "0001"  # type: ignore[union-attr]
    assert list((knowledge_dir(data_dir)).glob(f".{POINTER_FILE}.tmp-*")), "the crash left its temp file"
    assert [v.id for v in list_versions(data_dir)] == ["0001", "0002"], "complete, but never made live"
    assert hours_answer(live) == ("0001", "De 9 a 18.")
    assert publish_hours(data_dir, write, "De 7 a 16.", 2) == "0003"
    assert hours_answer(live) == ("0003", "De 7 a 16.")


def test_an_unreadable_pointer_keeps_the_loaded_version_and_a_publish_repairs_it(
    data_dir: Path, write: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    publish_hours(data_dir, write, "De 9 a 18.")
    live = LiveKnowledge(data_dir)
    assert hours_answer(live)[0] == "0001"
    (knowledge_dir(data_dir) / POINTER_FILE).write_text("{no es json", encoding="utf-8")
    with pytest.raises(ArtifactError):
        read_pointer(data_dir)

    with caplog.at_level(logging.ERROR, logger="knowledge_matrix"):
        assert hours_answer(live) == ("0001", "De 9 a 18.")
    assert "cannot read the knowledge pointer" in caplog.text

    assert publish_hours(data_dir, write, "De 8 a 17.", 1) == "0002"
    assert read_pointer(data_dir).lineage == ("0002",)  # type: ignore[union-attr]
    assert hours_answer(live) == ("0002", "De 8 a 17.")


# --- the live version ---------------------------------------------------------------------------------


def test_a_version_that_cannot_be_loaded_is_skipped_and_the_previous_one_keeps_answering(
    data_dir: Path, write: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    publish_hours(data_dir, write, "De 9 a 18.")
    live = LiveKnowledge(data_dir)
    assert hours_answer(live)[0] == "0001"
    publish_hours(data_dir, write, "De 8 a 17.", 1)
    (version_dir(data_dir, "0002") / INDEX_DIR / "entries.json").unlink()  # a disk that lost a file

    with caplog.at_level(logging.ERROR, logger="knowledge_matrix"):
        assert hours_answer(live) == ("0001", "De 9 a 18.")
        assert hours_answer(live) == ("0001", "De 9 a 18.")
    assert caplog.text.count("cannot load knowledge version 0002") == 1, "logged once, not on every message"

    publish_hours(data_dir, write, "De 7 a 16.", 2)
    assert hours_answer(live) == ("0003", "De 7 a 16.")


async def test_lookup_and_entry_answer_from_the_live_version(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    live = LiveKnowledge(data_dir)
    assert await live.lookup(QUESTION) is None, "nothing published: the caller offers a person"
    assert await live.entry("pagos") is None
    publish_hours(data_dir, write, "De 9 a 18.")

    lookup = await live.lookup(QUESTION)

    assert lookup is not None and lookup.version == "0001"
    assert lookup.hits[0].entry.id == "horario"
    assert lookup.verdict.kind in ("answer", "ambiguous", "no_match")
    assert len(lookup.hits) == 3, "every entry of a small matrix, for the GPT fallback"
    entry = await live.entry("pagos")
    assert entry is not None and entry.answer == "Tarjeta y transferencia."
    horario = await live.entry("horario")
    assert horario is not None and horario.quick_replies[0].payload == "#pagos"


def test_the_pointer_is_reread_after_a_while_even_when_its_stat_looks_the_same(
    data_dir: Path, write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two switches within one timestamp tick, the second reusing the inode and the size: only the
    periodic re-read can see it."""
    publish_hours(data_dir, write, "Uno.")
    publish_hours(data_dir, write, "Dos.", 1)
    monkeypatch.setattr(live_module, "_stamp", lambda path: (1, 2, 3, 4))
    ticks = [0.0]
    live = LiveKnowledge(data_dir, recheck_seconds=2.0, clock=lambda: ticks[0])
    assert hours_answer(live)[0] == "0002"
    rollback(data_dir, NOW)

    ticks[0] = 1.0
    assert hours_answer(live)[0] == "0002", "within the recheck period the stat() decides"
    ticks[0] = 2.5
    assert hours_answer(live) == ("0001", "Uno.")


def test_load_draft_builds_in_memory_without_publishing(data_dir: Path, write: Callable[[str, str], Path]) -> None:
    report, knowledge = load_draft(write("borrador.csv", matrix_text("De 10 a 14.")), embedder=EMBEDDER)
    assert report.ok and knowledge is not None
    assert knowledge.search(QUESTION, 1)[0].entry.answer == "De 10 a 14."
    report, knowledge = load_draft(write("mala.csv", BAD), embedder=EMBEDDER)
    assert not report.ok and knowledge is None
    assert read_pointer(data_dir) is None


def test_the_embedder_is_created_once_per_process() -> None:
    first = shared_embedder("hashing:48")
    assert shared_embedder(" hashing:48 ") is first
    assert shared_embedder(first.name) is first


# --- switching under load ---------------------------------------------------------------------------


def test_queries_in_threads_never_fail_while_versions_switch(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    publish_hours(data_dir, write, "Versión 1.")
    live = LiveKnowledge(data_dir)
    answers = {"0001": "Versión 1."}
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                version = live.refresh()
                assert version is not None
                seen.append((version.version, version.knowledge.search(QUESTION, 3)[0].entry.answer))
            except BaseException as exc:  # noqa: BLE001 - the test reports every failure
                errors.append(exc)
                return

    askers = [threading.Thread(target=ask) for _ in range(4)]
    for thread in askers:
        thread.start()
    try:
        for minute in range(1, 6):
            version = publish_hours(data_dir, write, f"Versión {minute + 1}.", minute)
            answers[version] = f"Versión {minute + 1}."
        rollback(data_dir, NOW)
        rollback(data_dir, NOW)
    finally:
        stop.set()
        for thread in askers:
            thread.join(10)

    assert errors == []
    assert seen and all(answers[version] == answer for version, answer in seen), "an answer of another version"
    assert len({version for version, _ in seen}) > 1, "the queries ran across the switches"
    assert hours_answer(live) == ("0004", "Versión 4.")


async def test_concurrent_lookups_on_the_event_loop_never_fail_while_versions_switch(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    publish_hours(data_dir, write, "Versión 1.")
    live = LiveKnowledge(data_dir)
    answers = {"0001": "Versión 1."}
    results: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def ask() -> None:
        while not done.is_set():
            lookup = await live.lookup(QUESTION)
            assert lookup is not None
            results.append((lookup.version, lookup.hits[0].entry.answer))
            await asyncio.sleep(0)

    def publish_some() -> None:
        for minute in range(1, 5):
            answers[publish_hours(data_dir, write, f"Versión {minute + 1}.", minute)] = f"Versión {minute + 1}."
        rollback(data_dir, NOW)

    askers = [asyncio.create_task(ask()) for _ in range(8)]
    await asyncio.to_thread(publish_some)
    await asyncio.sleep(0.05)
    done.set()
    await asyncio.gather(*askers)

    assert results and all(answers[version] == answer for version, answer in results)
    assert len({version for version, _ in results}) > 1, "the lookups ran across the switches"
    final = await live.lookup(QUESTION)
    assert final is not None and (final.version, final.hits[0].entry.answer) == ("0004", "Versión 4.")


# --- the command line -------------------------------------------------------------------------------


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_publish_rollback_and_versions_on_the_command_line(
    data_dir: Path, write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    first, second = write("a.csv", matrix_text("Uno.")), write("b.csv", matrix_text("Dos."))

    code, out, _ = run("publish", str(first), "--embedder", "hashing:64", "--by", "ana")
    assert code == EXIT_OK and "Publicada la versión 0001: 3 entradas" in out
    code, out, _ = run("publish", str(second), "--embedder", "hashing:64", "--if-nothing-published")
    assert code == EXIT_OK and "Ya hay una versión publicada (0001)" in out
    code, out, _ = run("publish", str(second), "--embedder", "hashing:64")
    assert code == EXIT_OK and "versión 0002" in out and "antes respondía la 0001" in out

    code, _, err = run("publish", str(write("mala.csv", BAD)), "--embedder", "hashing:64")
    assert code == EXIT_INVALID and "NO se publicará" in err

    code, out, _ = run("versions")
    assert code == EXIT_OK
    assert out.splitlines()[0].startswith("* 0002") and "b.csv" in out and "(ana)" in out
    code, out, _ = run("versions", "--json")
    listing = json.loads(out)
    assert (listing["live"], listing["lineage"]) == ("0002", ["0001", "0002"])
    assert [v["live"] for v in listing["versions"]] == [False, True]

    code, out, _ = run("rollback")
    assert code == EXIT_OK and "versión 0001" in out
    code, _, err = run("rollback")
    assert code == EXIT_INVALID and "no hay una versión anterior" in err
    code, out, _ = run("rollback", "--to", "0002", "--data-dir", str(data_dir))
    assert code == EXIT_OK and current_version(data_dir).id == "0002"  # type: ignore[union-attr]


def test_a_live_index_of_an_older_format_is_published_again_from_its_own_file(
    data_dir: Path, write: Callable[[str, str], Path]
) -> None:
    """After an upgrade that changed the index format the live version cannot be loaded (every question would go to
    a person): `republish_if_outdated` (run by `knowledge_matrix upgrade` and `publish --if-nothing-published` at
    start) publishes the live version's own source again, once; a current index is left alone."""
    first = publish_hours(data_dir, write, "De 8 a 18.")
    assert publishing.republish_if_outdated(data_dir, NOW, embedder=EMBEDDER) is None  # current: nothing to do
    manifest_path = version_dir(data_dir, first) / INDEX_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="rebuild the index"):
        publishing.load_version(data_dir, first, lambda _name: EMBEDDER)

    again = publishing.republish_if_outdated(data_dir, NOW + timedelta(minutes=1), embedder=EMBEDDER)
    assert again is not None and again.version is not None and again.previous_version == first
    assert (again.version.filename, again.version.published_by) == ("m0.csv", "upgrade")
    assert read_pointer(data_dir).version == again.version.id  # type: ignore[union-attr]
    loaded = publishing.load_version(data_dir, again.version.id, lambda _name: EMBEDDER)
    assert loaded.search(QUESTION, 1)[0].entry_id == "horario"
    assert publishing.republish_if_outdated(data_dir, NOW + timedelta(minutes=2), embedder=EMBEDDER) is None
