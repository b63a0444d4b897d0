"""From what the stores answered to a report's tables, with known figures: local days (an hour at 03:00 UTC belongs
to the day before in Guayaquil), the headline share and its trend in points, the agents' leaderboard with p50/p90
waits, sends by outcome worded by the console's tables, entries used and never used, and the knowledge part an
editor gets (no traffic, no agents, no sends).

Would catch: a UTC day instead of the local one, «¿Quisiste decir…?» without a choice counted as answered, an
episode attributed to the wrong agent, a send's reason shown as a bare code, an editor seeing the agents' table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from reports.assemble import AgentRating, CsatFigures, OpenGroup, Sources, assemble
from reports.model import Period

GYE = ZoneInfo("America/Guayaquil")
PERIOD = Period(date(2025, 3, 1), date(2025, 3, 3), GYE)
REASONS = {"user_asked": "El cliente pidió hablar con una persona"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.utc)


@dataclass(frozen=True)
class MessageHour:
    hour: datetime
    messages: int
    conversations: int
    new_people: int


@dataclass(frozen=True)
class HandlingHour:
    hour: datetime
    handling: str
    n: int


@dataclass(frozen=True)
class SendHour:
    hour: datetime
    purpose: str
    status: str
    reason_code: str | None
    error_code: int | None
    n: int


@dataclass(frozen=True)
class Episode:
    paused_at: datetime
    reason: str | None
    first_reply_at: datetime | None = None
    first_reply_by: str | None = None
    resumed_at: datetime | None = None
    closed_by: str | None = None
    assigned_to: str | None = None


@dataclass(frozen=True)
class RuleCount:
    rule_id: str
    matched: int
    replied: int
    private: int
    public: int
    started: int


def sources() -> Sources:
    t0 = at(1, 15)
    return Sources(
        message_hours=[MessageHour(at(1, 15), 5, 2, 2), MessageHour(at(2, 3), 4, 1, 1),  # 03:00 UTC: still the 1st
                       MessageHour(at(3, 14), 1, 1, 0)],
        handling_hours=[HandlingHour(at(1, 15), "matrix", 3), HandlingHour(at(1, 16), "selected", 1),
                        HandlingHour(at(2, 15), "gpt", 1), HandlingHour(at(2, 15), "did_you_mean", 2),
                        HandlingHour(at(3, 15), "no_answer", 1), HandlingHour(at(3, 15), "handoff", 2)],
        previous_handling={"matrix": 1, "no_answer": 3},
        entry_use={"horario": 3, "precios": 1},
        entries=[("horario", "¿A qué hora abren?"), ("precios", "¿Cuánto cuesta?"), ("envios", "¿Hacen envíos?")],
        open_groups=[OpenGroup("¿Atienden feriados?", 3, 4, at(2, 20), "/console/unanswered/7")],
        episodes=[
            Episode(t0, "user_asked", t0 + timedelta(minutes=2), "agent:ana", t0 + timedelta(minutes=30), "ana"),
            Episode(t0, "user_asked", t0 + timedelta(minutes=10), "agent:ana", t0 + timedelta(minutes=50), "luis"),
            Episode(t0, "bot_failed", None, None, t0 + timedelta(hours=2), "luis", assigned_to="luis"),
            Episode(t0, None, None, None, None, None),
        ],
        csat=CsatFigures(asked=4, answered=2, average=4.5, by_rating={4: 1, 5: 1}),
        agent_ratings=[AgentRating("ana", 2, 2, 4.5)],
        new_by_campaign={None: 2, "verano": 1},
        rule_counts=[RuleCount("9", 2, 1, 2, 1, 1)],
        rule_names={"9": "Precio"},
        send_hours=[SendHour(at(1, 15), "reply", "sent", None, None, 7),
                    SendHour(at(2, 15), "follow_up", "blocked", "outside_window", None, 2),
                    SendHour(at(2, 16), "follow_up", "failed", None, 551, 1),
                    SendHour(at(3, 15), "reply", "sent", None, None, 1)],
        broadcasts=[],
    )


def rows(report_table: object) -> list[dict[str, object]]:
    return report_table.records()  # type: ignore[attr-defined, no-any-return]


def test_the_admins_report_with_known_figures() -> None:
    report = assemble(PERIOD, "all", sources(), reasons_es=REASONS)
    assert [r["fecha"] for r in rows(report.tables["dias"])] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert [(r["mensajes"], r["conversaciones"], r["contactos_nuevos"]) for r in rows(report.tables["dias"])] == [
        (9, 3, 3), (0, 0, 0), (1, 1, 0)]
    assert report.summary["messages"] == 10 and report.summary["new_contacts"] == 3
    # matrix 3 + selected 1 + gpt 1 of 10 handled; the period before: 1 of 4
    assert report.handled == 10
    assert report.headline.to_dict() == {"current": 50.0, "previous": 25.0, "points": 25.0}
    by_day = rows(report.tables["atencion_por_dia"])
    assert [r["sin_persona_pct"] for r in by_day] == [100.0, 33.3, 0.0]
    assert by_day[1]["did_you_mean"] == 2
    handling = {r["tipo"]: (r["preguntas"], r["porcentaje"]) for r in rows(report.tables["atencion"])}
    assert handling["handoff"] == (2, 20.0) and handling["matrix"] == (3, 30.0)

    agents = {r["agente"]: r for r in rows(report.tables["agentes"])}
    assert (agents["ana"]["episodios"], agents["ana"]["respondidas"], agents["ana"]["cerradas"]) == (2, 2, 1)
    assert (agents["ana"]["primera_respuesta_p50_segundos"], agents["ana"]["primera_respuesta_p90_segundos"]) == (
        120, 600)
    assert (agents["ana"]["csat_promedio"], agents["ana"]["csat_respuestas"]) == (4.5, 2)
    assert (agents["luis"]["episodios"], agents["luis"]["respondidas"], agents["luis"]["cerradas"]) == (1, 0, 2)
    assert (agents["luis"]["cierre_p50_segundos"], agents["luis"]["cierre_p90_segundos"]) == (3000, 7200)
    waits = rows(report.tables["espera"])
    assert (waits[0]["episodios"], waits[0]["p50_segundos"], waits[0]["p90_segundos"]) == (2, 120, 600)
    assert (waits[1]["episodios"], waits[1]["p50_segundos"], waits[1]["p90_segundos"]) == (3, 3000, 7200)
    assert (report.summary["episodes"], report.summary["episodes_open"],
            report.summary["episodes_closed_without_reply"]) == (4, 1, 1)
    pauses = {r["motivo"]: (r["motivo_es"], r["episodios"]) for r in rows(report.tables["pausas"])}
    assert pauses["user_asked"] == ("El cliente pidió hablar con una persona", 2)
    assert pauses[""] == ("Sin motivo registrado", 1)

    sends = rows(report.tables["envios"])
    assert [(r["estado"], r["mensajes"]) for r in sends] == [("sent", 8), ("blocked", 2), ("failed", 1)]
    assert sends[1]["estado_es"] == "bloqueado por la política" and "24 horas" in str(sends[1]["explicacion"])
    assert sends[2]["codigo_error"] == 551 and "(código 551)" in str(sends[2]["explicacion"])
    assert sends[0]["proposito_es"] == "Respuesta en la conversación"
    assert (report.summary["sends_sent"], report.summary["sends_blocked"], report.summary["sends_failed"]) == (8, 2, 1)

    assert [(r["entrada"], r["usos"]) for r in rows(report.tables["entradas"])] == [("horario", 3), ("precios", 1)]
    assert rows(report.tables["entradas_sin_uso"]) == [{"entrada": "envios", "pregunta": "¿Hacen envíos?"}]
    assert rows(report.tables["campanas"]) == [{"campana": "(sin campaña)", "contactos_nuevos": 2},
                                               {"campana": "verano", "contactos_nuevos": 1}]
    assert rows(report.tables["reglas_comentarios"]) == [{
        "regla": "9", "nombre": "Precio", "coincidencias": 2, "respuestas_privadas": 2, "respuestas_publicas": 1,
        "recibidas": 1, "conversaciones": 1}]
    assert {r["calificacion"]: r["respuestas"] for r in rows(report.tables["satisfaccion"])} == {
        1: 0, 2: 0, 3: 0, 4: 1, 5: 1}
    assert report.summary["csat_average"] == 4.5


def test_the_editors_report_is_the_knowledge_part_only() -> None:
    report = assemble(PERIOD, "knowledge", sources(), reasons_es=REASONS)
    assert set(report.tables) == {"atencion_por_dia", "atencion", "entradas", "entradas_sin_uso", "sin_respuesta"}
    assert "messages" not in report.summary and "sends_sent" not in report.summary
    assert report.headline.current == 50.0


def test_missing_sources_are_said_not_guessed() -> None:
    report = assemble(PERIOD, "all", Sources(), reasons_es={})
    assert report.headline.current is None and report.headline.points is None
    assert "no está disponible" in report.tables["agentes"].note
    assert [r["mensajes"] for r in rows(report.tables["dias"])] == [0, 0, 0]
