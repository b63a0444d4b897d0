"""From what the stores answered (`Sources`) to a `Report`: per local day, the headline share and its trend, waiting
times per agent, sends by outcome, entries. Pure: the service reads, this module counts and words.

The rows are the stores' own (the outbox's `MessageHour`/`MessageDay`/`SendHour`, the answer journal's
`HandlingHour`/`HandlingDay`, handoff's `Episode`, comments' `RuleCount`: all on lower floors); csat's figures and a
broadcast's `Report` arrive as the small dataclasses below, which the service fills from them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from answers.model import HandlingDay, HandlingHour
from broadcasts.report import reason_es
from comments.model import RuleCount
from csat.model import BOT_AGENT
from handoff.model import Episode
from handoff.service import AUTO_RESUME_BY
from outbox.model import MessageDay, MessageHour, SendHour
from reports.labels import (
    ANSWERED_WITHOUT_PERSON,
    HANDLING_ES,
    HANDLING_ORDER,
    PURPOSE_ES,
    SEND_STATUS_ES,
    SEND_STATUS_ORDER,
    label,
)
from reports.model import Cell, Part, Period, Report, Table, Trend, percentile, share, table

TOP_ENTRIES = 100  # the «most used» table (the CSV has the same rows)
TOP_GROUPS = 20
PAGE_INBOX = "page_inbox"  # how a reply from Meta's Page inbox is authored (connectors.handoff, handoff's episodes)
PAGE_INBOX_ES = "Bandeja de entrada de Meta"
APP_NAMES = frozenset({AUTO_RESUME_BY, BOT_AGENT})  # the app's own names, even without the console's reserved ones
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")  # console.auth.USERNAME_PATTERN: what a person can be called


@dataclass(frozen=True)
class CsatFigures:
    asked: int = 0
    answered: int = 0
    average: float | None = None
    by_rating: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentRating:
    agent: str
    asked: int
    answered: int
    average: float | None


@dataclass(frozen=True)
class BroadcastResult:
    id: int
    name: str
    status_es: str
    started_at: datetime | None
    total: int
    sent: int
    delivered: int
    read: int
    skipped: int
    blocked: int
    failed: int


@dataclass(frozen=True)
class BroadcastResults:
    """The period's broadcasts the service read, and whether there were more than it reads (`cut`)."""

    results: Sequence[BroadcastResult]
    cut: bool = False


@dataclass(frozen=True)
class OpenGroup:
    wording: str
    people: int
    asked: int
    last_at: datetime
    url: str


@dataclass(frozen=True)
class Sources:
    """What the stores answered for one period (None: that source is not available in this app: its tables say so).
    `previous_handling`: the period before's questions by handling (the trend)."""

    message_hours: Sequence[MessageHour] | None = None
    message_days: Sequence[MessageDay] | None = None  # the same summed per local day by the store (preferred)
    message_hours_since: datetime | None = None  # when the outbox began counting people's messages (None: always)
    send_hours: Sequence[SendHour] | None = None
    handling_hours: Sequence[HandlingHour] | None = None
    handling_days: Sequence[HandlingDay] | None = None  # the same summed per local day by the store (preferred)
    previous_handling: Mapping[str, int] | None = None
    entry_use: Mapping[str, int] | None = None
    entries: Sequence[tuple[str, str]] | None = None  # the live matrix: (entry id, its first question)
    open_groups: Sequence[OpenGroup] | None = None
    episodes: Sequence[Episode] | None = None
    csat: CsatFigures | None = None
    agent_ratings: Sequence[AgentRating] | None = None
    new_by_campaign: Mapping[str | None, int] | None = None
    rule_counts: Sequence[RuleCount] | None = None
    rule_names: Mapping[str, str] = field(default_factory=dict)
    broadcasts: Sequence[BroadcastResult] | None = None
    broadcasts_cut: bool = False  # more broadcasts started in the period than `broadcasts` holds


UNAVAILABLE_NOTE = "Sin datos: esta parte no está disponible en esta instalación."


def _note(source: object | None) -> str:
    return UNAVAILABLE_NOTE if source is None else ""


def agent_name(author: str | None) -> str | None:
    """`agent:ana` (how the transcript names a person) → `ana`."""
    if not author:
        return None
    return author.split(":", 1)[1] if author.startswith("agent:") else author


def code(value: object) -> str:
    """A code as text: an enum's value (`Status.SENT` → "sent"), a string as it is."""
    found = getattr(value, "value", value)
    return "" if found is None else str(found)


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else max(0, round(value.total_seconds()))


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _p(values: Sequence[float], q: float) -> int | None:
    found = percentile(values, q)
    return None if found is None else round(found)


# --- sections ------------------------------------------------------------------------------------------------------


def per_day_traffic(period: Period, rows: Sequence[MessageHour] | None,
                    counted_since: datetime | None = None, day_rows: Sequence[MessageDay] | None = None) -> Table:
    """Messages, conversations and new contacts per local day: from the store's day sums (`day_rows`) when it gave
    them, else from the hour rows, each in the local day of its start. The days that ended before the outbox began
    counting (`counted_since`, an upgrade) have no figures (None, «sin datos», a gap in the chart), not zeros."""
    days: dict[date, list[int]] = {day: [0, 0, 0] for day in period.days()}
    dated: Iterable[tuple[date, MessageHour | MessageDay]] = (
        ((row.day, row) for row in day_rows) if day_rows is not None
        else ((period.day_of(row.hour), row) for row in rows or ()))
    for day, row in dated:
        counts = days.get(day)
        if counts is not None:
            counts[0] += row.messages
            counts[1] += row.conversations
            counts[2] += row.new_people
    first_counted = period.day_of(counted_since) if counted_since is not None else None
    uncounted = [day for day in days if first_counted is not None and day < first_counted]
    note = ("Una conversación empieza con el primer mensaje de una persona o con el primero después de 24 horas sin "
            "escribir.")
    if uncounted and counted_since is not None:
        local = counted_since.astimezone(period.timezone).isoformat(sep=" ", timespec="minutes")
        note += (f" Los mensajes se cuentan desde {local} (la actualización que agregó los reportes): los días "
                 "anteriores dicen «sin datos», no cero.")
    return table("dias", "Mensajes y conversaciones por día",
                 [("fecha", "Fecha"), ("mensajes", "Mensajes de clientes"), ("conversaciones", "Conversaciones"),
                  ("contactos_nuevos", "Contactos nuevos")],
                 ([day.isoformat(), *([None] * 3 if day in uncounted else counts)] for day, counts in days.items()),
                 note=_note(rows if day_rows is None else day_rows) or note)


def handling_by_day(period: Period, rows: Sequence[HandlingHour] | None,
                    day_rows: Sequence[HandlingDay] | None = None) -> tuple[Table, Counter[str]]:
    """Questions per local day by handling: from the store's day sums (`day_rows`) when it gave them, else from the
    hour rows, each in the local day of its start."""
    days: dict[date, Counter[str]] = {day: Counter() for day in period.days()}
    if day_rows is not None:
        for day_row in day_rows:
            counts = days.get(day_row.day)
            if counts is not None:
                counts[code(day_row.handling)] += day_row.n
    else:
        for row in rows or ():
            counts = days.get(period.day_of(row.hour))
            if counts is not None:
                counts[code(row.handling)] += row.n
    totals: Counter[str] = Counter()
    out = []
    for day, counts in days.items():
        totals.update(counts)
        handled = sum(counts.values())
        without = sum(counts[kind] for kind in ANSWERED_WITHOUT_PERSON)
        out.append([day.isoformat(), *(counts[kind] for kind in HANDLING_ORDER), handled,
                    _pct(share(without, handled))])
    columns = [("fecha", "Fecha"), *((kind, HANDLING_ES[kind]) for kind in HANDLING_ORDER),
               ("preguntas", "Preguntas"), ("sin_persona_pct", "% respondidas sin una persona")]
    return table("atencion_por_dia", "Cómo se atendió cada pregunta, por día", columns, out,
                 note=_note(rows if day_rows is None else day_rows)), totals


def handling_totals(totals: Mapping[str, int], available: bool) -> Table:
    handled = sum(totals.values())
    kinds = [*HANDLING_ORDER, *sorted(set(totals) - set(HANDLING_ORDER))]
    return table("atencion", "Cómo se atendió cada pregunta",
                 [("tipo", "Código"), ("atencion", "Atención"), ("preguntas", "Preguntas"), ("porcentaje", "%")],
                 ([kind, label(HANDLING_ES, kind), totals.get(kind, 0), _pct(share(totals.get(kind, 0), handled))]
                  for kind in kinds),
                 note="" if available else UNAVAILABLE_NOTE)


def headline(totals: Mapping[str, int], previous: Mapping[str, int] | None) -> Trend:
    def without_person(counts: Mapping[str, int]) -> float | None:
        return share(sum(counts.get(kind, 0) for kind in ANSWERED_WITHOUT_PERSON), sum(counts.values()))

    return Trend(without_person(totals), without_person(previous) if previous is not None else None)


def entry_tables(use: Mapping[str, int] | None, entries: Sequence[tuple[str, str]] | None) -> list[Table]:
    titles = dict(entries or ())
    used = sorted((use or {}).items(), key=lambda item: (-item[1], item[0]))[:TOP_ENTRIES]
    most = table("entradas", "Entradas más usadas",
                 [("entrada", "Entrada"), ("pregunta", "Pregunta"), ("usos", "Veces que respondió")],
                 ([entry_id, titles.get(entry_id, ""), count] for entry_id, count in used),
                 note=_note(use) or f"Las {TOP_ENTRIES} que más respondieron (con la matriz o al elegir una opción).")
    never = table("entradas_sin_uso", "Entradas publicadas que no respondieron ninguna vez",
                  [("entrada", "Entrada"), ("pregunta", "Pregunta")],
                  ([entry_id, question] for entry_id, question in sorted(titles.items())
                   if not (use or {}).get(entry_id)),
                  note=UNAVAILABLE_NOTE if entries is None or use is None else "")
    return [most, never]


def unanswered_table(period: Period, groups: Sequence[OpenGroup] | None) -> Table:
    return table("sin_respuesta", "Preguntas sin respuesta todavía abiertas",
                 [("pregunta", "Pregunta"), ("personas", "Personas"), ("veces", "Veces"),
                  ("ultima_vez", "Última vez"), ("enlace", "Enlace")],
                 ([g.wording, g.people, g.asked, g.last_at.astimezone(period.timezone).isoformat(timespec="minutes"),
                   g.url] for g in groups or ()),
                 note=_note(groups) or f"Los {TOP_GROUPS} grupos abiertos que más personas preguntaron en el período "
                                       "(personas, veces y última vez cuentan solo el período). Las preguntas se "
                                       "guardan ANSWERS_RETENTION_DAYS días (180 por omisión): un período más "
                                       "antiguo muestra menos.")


def campaign_table(counts: Mapping[str | None, int] | None) -> Table:
    rows = sorted((counts or {}).items(), key=lambda item: (-item[1], item[0] or ""))
    return table("campanas", "Contactos nuevos por campaña",
                 [("campana", "Campaña"), ("contactos_nuevos", "Contactos nuevos")],
                 ([campaign or "(sin campaña)", n] for campaign, n in rows),
                 note=_note(counts) or "La campaña es el enlace m.me, el código QR o el anuncio por el que la "
                                       "persona llegó por primera vez. Cuenta a quienes escribieron a la página, "
                                       "por el día en que se registraron (un contacto importado de un archivo cuenta "
                                       "desde su importación cuando escribe); «Contactos nuevos» por día cuenta el "
                                       "primer mensaje de cada persona, así que las cifras pueden diferir.")


def rule_table(counts: Sequence[RuleCount] | None, names: Mapping[str, str]) -> Table:
    rows = sorted(counts or (), key=lambda r: (-r.matched, str(r.rule_id)))
    return table("reglas_comentarios", "Comentarios por regla de respuesta privada",
                 [("regla", "Regla"), ("nombre", "Nombre"), ("coincidencias", "Comentarios que coincidieron"),
                  ("respuestas_privadas", "Respuestas privadas"), ("respuestas_publicas", "Respuestas públicas"),
                  ("recibidas", "Respuestas privadas que llegaron"), ("conversaciones", "Conversaciones iniciadas")],
                 ([str(r.rule_id), names.get(str(r.rule_id), f"Regla {r.rule_id}"), r.matched, r.private, r.public,
                   r.replied, r.started] for r in rows),
                 note=_note(counts) or "Comentarios recibidos en el período; «conversaciones iniciadas»: personas "
                                       "que luego escribieron a la página.")


@dataclass
class _Agent:
    episodes: int = 0
    replied: int = 0
    closed: int = 0
    first_reply: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)


def team_member(author: str | None, reserved: AbstractSet[str] = frozenset()) -> str | None:
    """The leaderboard's row of an author: a console username (`agent:ana` → `ana`), the Page inbox's one row
    (`PAGE_INBOX_ES`), None for the names the app acts under itself (the idle auto-resume's "system", "bot", the
    console's reserved usernames in `reserved`) and for anything no person can be called (`app:123`, a free text
    given to the internal resume)."""
    name = agent_name(author)
    if not name:
        return None
    if name == PAGE_INBOX:
        return PAGE_INBOX_ES
    if name in reserved or name in APP_NAMES or not USERNAME.match(name):
        return None
    return name


def episode_tables(episodes: Sequence[Episode] | None, ratings: Sequence[AgentRating] | None,
                   reasons_es: Mapping[str, str], reserved: AbstractSet[str] = frozenset()) \
        -> tuple[list[Table], dict[str, Cell]]:
    """Handoffs by reason, waiting times overall and per agent (the «Tabla de clasificación»), and the summary's
    figures: still open, closed without any reply, closed by the idle auto-resume, the chatbot's own satisfaction.

    Only people are ranked: the idle auto-resume's closes are a figure of their own and stay out of every close
    wait (they measure the idle timeout, not the team); the chatbot's ratings are a summary line, not an agent."""
    found = episodes or ()
    by_reason: Counter[str] = Counter()
    first_waits: list[int] = []
    close_waits: list[int] = []
    auto_closed = still_open = closed_without_reply = 0
    agents: dict[str, _Agent] = defaultdict(_Agent)
    members: dict[str | None, str | None] = {}  # an author's row (a year has thousands of episodes, a few authors)
    automatic: dict[str | None, bool] = {}  # whether a closer is the idle auto-resume

    def member(author: str | None) -> str | None:
        if author not in members:
            members[author] = team_member(author, reserved)
        return members[author]

    for episode in found:  # one pass: a year of a busy page is ~7,000 episodes
        by_reason[code(episode.reason)] += 1
        first_reply_at, resumed_at = episode.first_reply_at, episode.resumed_at
        first_wait = _seconds(first_reply_at - episode.paused_at) if first_reply_at is not None else None
        if first_wait is not None:
            first_waits.append(first_wait)
        if episode.closed_by not in automatic:
            automatic[episode.closed_by] = agent_name(episode.closed_by) == AUTO_RESUME_BY
        close_wait = None
        if resumed_at is None:
            still_open += 1
        else:
            close_wait = _seconds(resumed_at - episode.paused_at)
            closed_without_reply += first_reply_at is None
            if automatic[episode.closed_by]:
                auto_closed += 1
            elif close_wait is not None:
                close_waits.append(close_wait)
        replier = member(episode.first_reply_by)
        closer = member(episode.closed_by)
        owner = replier or member(episode.assigned_to) or closer
        if owner:
            agents[owner].episodes += 1
        if replier and first_reply_at is not None:
            agents[replier].replied += 1
            agents[replier].first_reply.append(float(first_wait or 0))
        if closer and resumed_at is not None:
            agents[closer].closed += 1
            agents[closer].close.append(float(close_wait or 0))
    rated: dict[str, AgentRating] = {}
    bot_rating: AgentRating | None = None
    for rating in ratings or ():
        if rating.agent == BOT_AGENT:
            bot_rating = rating
        elif (name := team_member(rating.agent, reserved)) is not None:
            rated[name] = rating
    for name in rated:
        agents.setdefault(name, _Agent())
    reasons = table("pausas", "Conversaciones pasadas a una persona, por motivo",
                    [("motivo", "Código"), ("motivo_es", "Motivo"), ("episodios", "Veces")],
                    ([code, label(reasons_es, code, "Sin motivo registrado"), n]
                     for code, n in sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))),
                    note=_note(episodes))
    waits = table("espera", "Tiempo de espera de los clientes",
                  [("medida", "Medida"), ("episodios", "Conversaciones medidas"), ("p50_segundos", "p50 (segundos)"),
                   ("p90_segundos", "p90 (segundos)")],
                  [["Hasta la primera respuesta de una persona", len(first_waits), _p(first_waits, 50),
                    _p(first_waits, 90)],
                   ["Hasta el cierre", len(close_waits), _p(close_waits, 50), _p(close_waits, 90)]],
                  note=_note(episodes) or "Desde que el chatbot se pausó. p50: la mitad esperó como mucho esto; "
                                          "p90: nueve de cada diez. «Hasta el cierre» no cuenta las conversaciones "
                                          "cerradas automáticamente por inactividad.")
    leaderboard = table(
        "agentes", "Tabla de clasificación de agentes",
        [("agente", "Agente"), ("episodios", "Conversaciones"), ("respondidas", "Respondidas primero"),
         ("cerradas", "Cerradas"), ("primera_respuesta_p50_segundos", "Primera respuesta p50 (s)"),
         ("primera_respuesta_p90_segundos", "Primera respuesta p90 (s)"), ("cierre_p50_segundos", "Cierre p50 (s)"),
         ("cierre_p90_segundos", "Cierre p90 (s)"), ("csat_promedio", "Satisfacción (promedio)"),
         ("csat_respuestas", "Calificaciones")],
        ([name, a.episodes, a.replied, a.closed, _p(a.first_reply, 50), _p(a.first_reply, 90), _p(a.close, 50),
          _p(a.close, 90),
          _average(rated.get(name)), rated[name].answered if name in rated else 0]
         for name, a in sorted(agents.items(), key=lambda item: (-item[1].episodes, -item[1].closed, item[0]))),
        note=_note(episodes) or "Cada conversación cuenta para quien respondió primero (si nadie respondió, para "
                                "quien la tenía asignada o la cerró). Solo personas del equipo: las respuestas "
                                f"desde la bandeja de entrada de Meta son una fila, «{PAGE_INBOX_ES}»; los cierres "
                                "automáticos por inactividad y la satisfacción con el chatbot están en el resumen.")
    summary: dict[str, Cell] = {
        "episodes": len(found),
        "episodes_open": still_open,
        "episodes_closed_without_reply": closed_without_reply,
        "first_reply_p50_seconds": _p(first_waits, 50), "first_reply_p90_seconds": _p(first_waits, 90),
        "close_p50_seconds": _p(close_waits, 50), "close_p90_seconds": _p(close_waits, 90),
        "episodes_auto_closed": auto_closed,
        "csat_bot_asked": bot_rating.asked if bot_rating is not None else 0,
        "csat_bot_answered": bot_rating.answered if bot_rating is not None else 0,
        "csat_bot_average": _average(bot_rating),
    }
    return [reasons, waits, leaderboard], summary


def _average(rating: AgentRating | None) -> float | None:
    return round(rating.average, 2) if rating is not None and rating.average is not None else None


def send_table(rows: Sequence[SendHour] | None, standard: timedelta) -> tuple[Table, dict[str, Cell]]:
    counts: Counter[tuple[str, str, int, str]] = Counter()
    for row in rows or ():
        counts[(code(row.status), code(row.reason_code), row.error_code or 0, code(row.purpose))] += row.n
    order = {status: i for i, status in enumerate(SEND_STATUS_ORDER)}
    keys = sorted(counts, key=lambda k: (order.get(k[0], len(order)), -counts[k], k))
    out = []
    for status, reason, error, purpose in keys:
        explained = reason_es(reason or None, standard, error or None) if (reason or error) else ""
        out.append([status, label(SEND_STATUS_ES, status), reason or None, error or None, explained, purpose,
                    label(PURPOSE_ES, purpose), counts[(status, reason, error, purpose)]])
    by_status: Counter[str] = Counter()
    for (status, *_rest), n in counts.items():
        by_status[status] += n
    summary: dict[str, Cell] = {f"sends_{status}": by_status.get(status, 0) for status in SEND_STATUS_ORDER}
    return table("envios", "Mensajes enviados por resultado",
                 [("estado", "Estado"), ("estado_es", "Resultado"), ("motivo", "Motivo (código)"),
                  ("codigo_error", "Código de error de Meta"), ("explicacion", "Explicación"),
                  ("proposito", "Tipo (código)"), ("proposito_es", "Tipo de mensaje"), ("mensajes", "Mensajes")],
                 out, note=_note(rows) or "Cada mensaje cuenta una vez, por su resultado final (un mensaje fallido "
                                          "que se reintentó y salió cuenta como enviado)."), summary


def broadcast_table(period: Period, results: Sequence[BroadcastResult] | None, cut: bool = False) -> Table:
    return table("transmisiones", "Transmisiones del período",
                 [("id", "Id"), ("nombre", "Nombre"), ("estado", "Estado"), ("inicio", "Inicio"),
                  ("destinatarios", "Destinatarios"), ("enviados", "Enviados"), ("entregados", "Entregados"),
                  ("leidos", "Leídos"), ("omitidos", "Omitidos"), ("bloqueados", "Bloqueados"),
                  ("fallidos", "Fallidos")],
                 ([b.id, b.name, b.status_es,
                   b.started_at.astimezone(period.timezone).isoformat(timespec="minutes") if b.started_at else None,
                   b.total, b.sent, b.delivered, b.read, b.skipped, b.blocked, b.failed] for b in results or ()),
                 note=_note(results) or ("Las que empezaron en el período." + (
                     f" Solo las primeras {len(results or ())}: hubo más; elija un período más corto." if cut else "")))


def csat_table(figures: CsatFigures | None) -> tuple[Table, dict[str, Cell]]:
    found = figures or CsatFigures()
    ratings = sorted(set(found.by_rating) | {1, 2, 3, 4, 5})
    summary: dict[str, Cell] = {"csat_asked": found.asked, "csat_answered": found.answered,
                                "csat_average": round(found.average, 2) if found.average is not None else None}
    return table("satisfaccion", "Satisfacción de los clientes (calificaciones de 1 a 5)",
                 [("calificacion", "Calificación"), ("respuestas", "Respuestas")],
                 ([rating, found.by_rating.get(rating, 0)] for rating in ratings),
                 note=_note(figures) or f"Se pidió calificar {found.asked} conversaciones cerradas; respondieron "
                                        f"{found.answered}."), summary


# The summary's figures in the «resumen» table (and its CSV), in this order; the headline's come first.
SUMMARY_ES: Mapping[str, str] = {
    "answered_without_person_pct": "% de preguntas respondidas sin una persona",
    "answered_without_person_previous_pct": "% del período anterior",
    "answered_without_person_points": "Diferencia (puntos porcentuales)",
    "handled": "Preguntas atendidas",
    "unanswered": "Preguntas sin respuesta (o pasadas a una persona)",
    "messages": "Mensajes de clientes",
    "conversations": "Conversaciones",
    "new_contacts": "Contactos nuevos",
    "episodes": "Conversaciones pasadas a una persona",
    "episodes_open": "Todavía abiertas",
    "episodes_closed_without_reply": "Cerradas sin ninguna respuesta",
    "episodes_auto_closed": "Cerradas automáticamente por inactividad",
    "first_reply_p50_seconds": "Primera respuesta p50 (segundos)",
    "first_reply_p90_seconds": "Primera respuesta p90 (segundos)",
    "close_p50_seconds": "Hasta el cierre p50 (segundos)",
    "close_p90_seconds": "Hasta el cierre p90 (segundos)",
    **{f"sends_{status}": f"Mensajes: {SEND_STATUS_ES[status]}" for status in SEND_STATUS_ORDER},
    "csat_asked": "Satisfacción: conversaciones a las que se pidió calificar",
    "csat_answered": "Satisfacción: calificaciones recibidas",
    "csat_average": "Satisfacción: promedio (1 a 5)",
    "csat_bot_asked": "Satisfacción con el chatbot: se pidió calificar",
    "csat_bot_answered": "Satisfacción con el chatbot: calificaciones recibidas",
    "csat_bot_average": "Satisfacción con el chatbot: promedio (1 a 5)",
}


def summary_table(trend: Trend, summary: Mapping[str, Cell]) -> Table:
    """The headline and the summary's figures as rows (figure, value): a CSV like every other table."""
    figures: dict[str, Cell] = {"answered_without_person_pct": _pct(trend.current),
                                "answered_without_person_previous_pct": _pct(trend.previous),
                                "answered_without_person_points": _pct(trend.points), **summary}
    keys = [*(key for key in SUMMARY_ES if key in figures), *sorted(set(figures) - set(SUMMARY_ES))]
    return table("resumen", "Resumen", [("cifra", "Código"), ("cifra_es", "Cifra"), ("valor", "Valor")],
                 ([key, SUMMARY_ES.get(key, key), figures[key]] for key in keys),
                 note="Las cifras del encabezado y del resumen de la página; vacío: sin datos para calcularla.")


def assemble(period: Period, part: Part, sources: Sources, *, reasons_es: Mapping[str, str],
             standard_window: timedelta = timedelta(hours=24), reserved: AbstractSet[str] = frozenset()) -> Report:
    """The report of `period`: `part` "knowledge" (editors) holds only how questions were handled, the entries and
    the unanswered summary; "all" everything. `reserved`: the names no person can have (the console's reserved
    usernames), never ranked as agents; the last table, «resumen», is the headline and the summary as rows."""
    by_day, totals = handling_by_day(period, sources.handling_hours, sources.handling_days)
    handled_available = sources.handling_hours is not None or sources.handling_days is not None
    tables: list[Table] = []
    summary: dict[str, Cell] = {}
    if part == "all":
        traffic = per_day_traffic(period, sources.message_hours, sources.message_hours_since, sources.message_days)
        tables.append(traffic)
        summary.update(messages=sum(int(r[1] or 0) for r in traffic.rows),  # «sin datos» days add nothing
                       conversations=sum(int(r[2] or 0) for r in traffic.rows),
                       new_contacts=sum(int(r[3] or 0) for r in traffic.rows))
    tables += [by_day, handling_totals(totals, handled_available),
               *entry_tables(sources.entry_use, sources.entries), unanswered_table(period, sources.open_groups)]
    summary["handled"] = sum(totals.values())
    summary["unanswered"] = sum(totals.get(kind, 0) for kind in ("did_you_mean", "no_answer", "handoff"))
    if part == "all":
        tables += [campaign_table(sources.new_by_campaign), rule_table(sources.rule_counts, sources.rule_names)]
        handoff_tables, handoff_summary = episode_tables(sources.episodes, sources.agent_ratings, reasons_es,
                                                         reserved)
        sends, send_summary = send_table(sources.send_hours, standard_window)
        satisfaction, csat_summary = csat_table(sources.csat)
        tables += [*handoff_tables, sends, broadcast_table(period, sources.broadcasts, sources.broadcasts_cut),
                   satisfaction]
        summary.update(handoff_summary)
        summary.update(send_summary)
        summary.update(csat_summary)
    trend = headline(totals, sources.previous_handling)
    tables.append(summary_table(trend, summary))
    return Report(period=period, part=part, headline=trend, handled=sum(totals.values()), summary=summary,
                  tables={t.name: t for t in tables})

