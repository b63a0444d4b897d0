"""From what the stores answered to a report's tables, with known figures: local days (an hour at 03:00 UTC belongs
to the day before in Guayaquil), the headline share and its trend in points, the agents' leaderboard with p50/p90
waits, sends by outcome worded by the console's tables, entries used and never used, and the knowledge part an
editor gets (no traffic, no agents, no sends).

Would catch: a UTC day instead of the local one, «¿Quisiste decir…?» without a choice counted as answered, an
episode attributed to the wrong agent, a send's reason shown as a bare code, an editor seeing the agents' table."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from answers.model import Handling, HandlingHour
from comments.model import RuleCount
from handoff.model import Episode
from outbox.model import MessageHour, Purpose, SendHour, Status
from reports.assemble import AgentRating, BroadcastResult, CsatFigures, OpenGroup, Sources, assemble
from reports.charts import draw
from reports.model import Period

GYE = ZoneInfo("America/Guayaquil")
PERIOD = Period(date(2025, 3, 1), date(2025, 3, 3), GYE)
PAGE = "100000000000001"
REASONS = {"user_asked": "El cliente pidió hablar con una persona"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.utc)


def message_hour(hour: datetime, messages: int, conversations: int, new_people: int) -> MessageHour:
    return MessageHour(hour, PAGE, messages, conversations, new_people)


def handling_hour(hour: datetime, handling: str, n: int) -> HandlingHour:
    return HandlingHour(hour, PAGE, Handling(handling), n)


def send_hour(hour: datetime, purpose: str, status: str, reason_code: str | None, error_code: int | None,
              n: int) -> SendHour:
    return SendHour(hour, PAGE, Purpose(purpose), Status(status), reason_code, error_code, n)


def episode(paused_at: datetime, reason: str | None, first_reply_at: datetime | None = None,
            first_reply_by: str | None = None, resumed_at: datetime | None = None, closed_by: str | None = None,
            assigned_to: str | None = None) -> Episode:
    return Episode(f"{PAGE}:1", PAGE, "1", paused_at, reason, "bot", first_reply_at, first_reply_by, resumed_at,
                   closed_by, assigned_to)


def sources() -> Sources:
    t0 = at(1, 15)
    return Sources(
        message_hours=[message_hour(at(1, 15), 5, 2, 2), message_hour(at(2, 3), 4, 1, 1),  # 03:00 UTC: still the 1st
                       message_hour(at(3, 14), 1, 1, 0)],
        handling_hours=[handling_hour(at(1, 15), "matrix", 3), handling_hour(at(1, 16), "selected", 1),
                        handling_hour(at(2, 15), "gpt", 1), handling_hour(at(2, 15), "did_you_mean", 2),
                        handling_hour(at(3, 15), "no_answer", 1), handling_hour(at(3, 15), "handoff", 2)],
        previous_handling={"matrix": 1, "no_answer": 3},
        entry_use={"horario": 3, "precios": 1},
        entries=[("horario", "¿A qué hora abren?"), ("precios", "¿Cuánto cuesta?"), ("envios", "¿Hacen envíos?")],
        open_groups=[OpenGroup("¿Atienden feriados?", 3, 4, at(2, 20), "/console/unanswered/7")],
        episodes=[
            episode(t0, "user_asked", t0 + timedelta(minutes=2), "agent:ana", t0 + timedelta(minutes=30), "ana"),
            episode(t0, "user_asked", t0 + timedelta(minutes=10), "agent:ana", t0 + timedelta(minutes=50), "luis"),
            episode(t0, "bot_failed", None, None, t0 + timedelta(hours=2), "luis", assigned_to="luis"),
            episode(t0, None, None, None, None, None),
        ],
        csat=CsatFigures(asked=4, answered=2, average=4.5, by_rating={4: 1, 5: 1}),
        agent_ratings=[AgentRating("ana", 2, 2, 4.5)],
        new_by_campaign={None: 2, "verano": 1},
        rule_counts=[RuleCount("9", 2, 1, 2, 1, 1)],
        rule_names={"9": "Precio"},
        send_hours=[send_hour(at(1, 15), "reply", "sent", None, None, 7),
                    send_hour(at(2, 15), "follow_up", "blocked", "outside_window", None, 2),
                    send_hour(at(2, 16), "follow_up", "failed", None, 551, 1),
                    send_hour(at(3, 15), "reply", "sent", None, None, 1)],
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
    assert set(report.tables) == {"atencion_por_dia", "atencion", "entradas", "entradas_sin_uso", "sin_respuesta",
                                  "resumen"}
    assert "messages" not in report.summary and "sends_sent" not in report.summary
    assert report.headline.current == 50.0


def test_missing_sources_are_said_not_guessed() -> None:
    report = assemble(PERIOD, "all", Sources(), reasons_es={})
    assert report.headline.current is None and report.headline.points is None
    assert "no está disponible" in report.tables["agentes"].note
    assert [r["mensajes"] for r in rows(report.tables["dias"])] == [0, 0, 0]


def test_only_people_are_ranked_the_app_and_the_page_inbox_are_not_agents() -> None:
    """The idle auto-resume ("system") closes, a free-text closer, the console's reserved names and the chatbot's own
    ratings never make an agent row; Page-inbox replies are one row; auto-closes are a summary figure outside every
    close wait; the chatbot's satisfaction is its own summary line."""
    t0 = at(1, 15)
    episodes = [
        episode(t0, "user_asked", None, None, t0 + timedelta(hours=1), "system"),  # idle, nobody answered
        episode(t0, "user_asked", t0 + timedelta(minutes=1), "agent:ana", t0 + timedelta(hours=2), "system"),
        episode(t0, "user_asked", t0 + timedelta(minutes=3), "agent:bruno", t0 + timedelta(minutes=20), "bruno"),
        episode(t0, "user_asked", t0, "page_inbox", t0 + timedelta(minutes=5), "page_inbox"),
        episode(t0, "bot_failed", None, None, t0 + timedelta(minutes=9), "Soporte externo"),  # internal resume's `by`
        episode(t0, "bot_failed", None, None, t0 + timedelta(minutes=9), "connector"),
        episode(t0, "bot_failed", t0 + timedelta(minutes=2), "app:123", None, None, assigned_to="rasa"),
    ]
    ratings = [AgentRating("bot", 10, 4, 3.5), AgentRating("ana", 1, 1, 5.0), AgentRating("system", 2, 1, 1.0)]
    report = assemble(PERIOD, "all", Sources(episodes=episodes, agent_ratings=ratings), reasons_es=REASONS,
                      reserved=frozenset({"system", "bot", "connector", "rasa", "console", "page_inbox"}))
    agents = {r["agente"]: r for r in rows(report.tables["agentes"])}
    assert set(agents) == {"ana", "bruno", "Bandeja de entrada de Meta"}
    assert (agents["ana"]["episodios"], agents["ana"]["respondidas"], agents["ana"]["cerradas"]) == (1, 1, 0)
    assert agents["ana"]["csat_promedio"] == 5.0
    assert (agents["bruno"]["cerradas"], agents["bruno"]["cierre_p50_segundos"]) == (1, 1200)
    inbox = agents["Bandeja de entrada de Meta"]
    assert (inbox["episodios"], inbox["respondidas"], inbox["cerradas"], inbox["primera_respuesta_p50_segundos"]) == (
        1, 1, 1, 0)
    summary = report.summary
    assert summary["episodes_auto_closed"] == 2
    # close waits without the two idle closes: 20 min, 5 min, 9 min, 9 min
    assert (summary["close_p50_seconds"], summary["close_p90_seconds"]) == (540, 1200)
    assert (summary["csat_bot_asked"], summary["csat_bot_answered"], summary["csat_bot_average"]) == (10, 4, 3.5)
    resumen = {r["cifra"]: (r["cifra_es"], r["valor"]) for r in rows(report.tables["resumen"])}
    assert resumen["episodes_auto_closed"] == ("Cerradas automáticamente por inactividad", 2)
    assert resumen["csat_bot_average"] == ("Satisfacción con el chatbot: promedio (1 a 5)", 3.5)


def test_without_the_consoles_names_the_app_still_never_ranks_itself() -> None:
    t0 = at(1, 15)
    report = assemble(PERIOD, "all", Sources(
        episodes=[episode(t0, "user_asked", None, None, t0 + timedelta(hours=1), "system")],
        agent_ratings=[AgentRating("bot", 1, 1, 4.0)]), reasons_es=REASONS)
    assert rows(report.tables["agentes"]) == []
    assert report.summary["episodes_auto_closed"] == 1 and report.summary["csat_bot_average"] == 4.0


def test_days_before_the_outbox_began_counting_say_no_data_not_zero() -> None:
    """An upgraded outbox began counting people's messages on the 2nd at 10:00 local: the 1st is «sin datos»."""
    started = datetime(2025, 3, 2, 15, 0, tzinfo=timezone.utc)
    report = assemble(PERIOD, "all", Sources(message_hours=[message_hour(at(2, 16), 4, 2, 1)],
                                             message_hours_since=started), reasons_es=REASONS)
    days = [(r["fecha"], r["mensajes"], r["conversaciones"], r["contactos_nuevos"])
            for r in rows(report.tables["dias"])]
    assert days == [("2025-03-01", None, None, None), ("2025-03-02", 4, 2, 1), ("2025-03-03", 0, 0, 0)]
    assert "2025-03-02 10:00-05:00" in report.tables["dias"].note and "sin datos" in report.tables["dias"].note
    assert report.summary["messages"] == 4
    assert "<polyline" in (draw(report, "mensajes") or "")
    counted_from_the_start = assemble(PERIOD, "all", Sources(message_hours=[], message_hours_since=at(1, 5)),
                                      reasons_es=REASONS)
    assert [r["mensajes"] for r in rows(counted_from_the_start.tables["dias"])] == [0, 0, 0]
    assert "sin datos" not in counted_from_the_start.tables["dias"].note


def test_the_headline_and_summary_are_a_table_with_a_csv() -> None:
    report = assemble(PERIOD, "all", sources(), reasons_es=REASONS)
    resumen = {r["cifra"]: r["valor"] for r in rows(report.tables["resumen"])}
    assert (resumen["answered_without_person_pct"], resumen["answered_without_person_previous_pct"],
            resumen["answered_without_person_points"], resumen["handled"]) == (50.0, 25.0, 25.0, 10)
    assert resumen["messages"] == 10 and resumen["sends_failed"] == 1 and resumen["csat_average"] == 4.5
    assert set(resumen) == {"answered_without_person_pct", "answered_without_person_previous_pct",
                            "answered_without_person_points", *report.summary}
    assert list(report.tables)[-1] == "resumen"
    editor = {r["cifra"] for r in rows(assemble(PERIOD, "knowledge", sources(), reasons_es=REASONS)
                                       .tables["resumen"])}
    assert editor == {"answered_without_person_pct", "answered_without_person_previous_pct",
                      "answered_without_person_points", "handled", "unanswered"}


def test_a_period_with_more_broadcasts_than_read_says_so() -> None:
    one = BroadcastResult(1, "Promo", "terminada", at(1, 15), 10, 8, 6, 2, 1, 0, 1)
    report = assemble(PERIOD, "all", Sources(broadcasts=[one], broadcasts_cut=True), reasons_es=REASONS)
    assert "Solo las primeras 1: hubo más" in report.tables["transmisiones"].note
    assert rows(report.tables["transmisiones"])[0]["enviados"] == 8
    whole = assemble(PERIOD, "all", Sources(broadcasts=[one]), reasons_es=REASONS)
    assert "hubo más" not in whole.tables["transmisiones"].note
