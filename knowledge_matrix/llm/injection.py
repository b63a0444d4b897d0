"""A cheap pre-check for the obvious injection attempts in what a customer wrote (Spanish and English).

It only spares a model call: the real defences are the prompt's structure and the checks on the
reply (`guard.py`), which also hold for attempts this misses.
"""

from __future__ import annotations

import re

from knowledge_matrix.text import fold

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_PERSONA = (
    r"(asistente|ia|inteligencia|chatbot|bot|gpt|chatgpt|modelo|sistema|desarrollador|programador|administrador|"
    r"admin|hacker|pirata|persona|humano|experto|experta|abogado|abogada|medico|medica|doctor|doctora|dan|otro|otra)"
)
_EN_PERSONA = (
    r"(assistant|ai|chatbot|bot|gpt|chatgpt|model|system|developer|programmer|admin|administrator|hacker|pirate|"
    r"person|human|expert|lawyer|doctor|dan|someone else)"
)
INJECTION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # "ignora tus instrucciones", "ignore previous instructions", "disregard the rules above"
        r"\bignor\w*\b.{0,40}\b(instruccion|indicacion|regla|orden|prompt|instruction|rule|direction|guideline)",
        r"\b(disregard|forget|override|bypass)\b.{0,40}\b(instruction|rule|prompt|previous|above|everything)",
        r"\bolvid\w*\b.{0,25}\b(todo lo anterior|lo anterior|todo lo que|(tus|las|sus) (instrucciones|reglas|"
        r"indicaciones|ordenes))",
        r"\b(salta|saltate|omite|desobedece|anula)\w*\b.{0,25}\b(instrucciones|reglas|indicaciones|restricciones)",
        r"\b(system|developer|initial|hidden|original) (prompt|message|instructions?)\b",
        r"\b(prompt|mensaje|instrucciones|indicaciones|reglas) (del|de) (sistema|desarrollador)\b",
        r"\b(tu|su|your) prompt\b",
        # "repite tus instrucciones", "muéstrame el prompt", "print your instructions", "show the system prompt"
        r"\b(repite|repetir|muestra|muestrame|mostrar|revela|revelame|revelar|dime|imprime|escribe|copia|"
        r"ensename|comparte|traduce|resume)\b.{0,30}\b((tus|sus) (instrucciones|reglas|indicaciones|directrices|"
        r"configuracion)|el prompt)",
        r"\b(repeat|reveal|show|print|tell me|output|display|share|write|translate|summari[sz]e)\b.{0,30}"
        r"\b(your\b.{0,20}\b(instructions|rules|prompt|guidelines|configuration)|the prompt)",
        rf"\b(actua|actuar|actue|comportate|hazte pasar|haz de cuenta|finge|fingir|pretende|simula|juega a ser)\b"
        rf".{{0,15}}\b(como si|que eres|(ser|como|por) (un |una |el |la |mi |tu )?{_PERSONA})\b",
        r"^(actua|comportate) como\b[^?]*$",  # an order at the start of a message, not "¿actúa como repelente?"
        rf"\bact as (if|an? {_EN_PERSONA}|my {_EN_PERSONA}|the {_EN_PERSONA}|{_EN_PERSONA})\b",
        r"^act as\b[^?]*$",
        r"\b(pretend (to be|you are)|you are now|from now on,? you|role-?play as)\b",
        r"\b(ahora eres|ahora seras|a partir de ahora (eres|seras|responde|vas a)|desde ahora (eres|seras))\b",
        r"\b(nuevas instrucciones|new instructions|jailbreak|dan mode|developer mode|modo desarrollador|modo dios|"
        r"god mode)\b",
        r"(^|\n)\s*(system|assistant|developer|sistema|asistente)\s*:",
        r"</?\s*(entries|question|conversation|system|instructions?)\s*>",
        r"\bno_answer\b",
        r"km-rules",
    )
)


def looks_like_injection(text: str) -> bool:
    """A cheap check for the obvious attempts (Spanish and English), on folded text.

    It only spares a model call: the real defences are the prompt's structure and the checks
    on the reply, which also hold for attempts this misses.
    """
    folded = _ZERO_WIDTH.sub("", fold(text))
    folded = re.sub(r"[ \t\r\f\v]+", " ", folded).strip()
    # Punctuation used to break up words ("ign.ora", "¿actúa…") is not part of them.
    folded = re.sub(r"^[¿¡\"'«(\[]+", "", folded)
    return any(pattern.search(folded) for pattern in INJECTION_PATTERNS)
