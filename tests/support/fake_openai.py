"""A local OpenAI-compatible server for tests: real HTTP, OpenAI's request and response shapes.

    fake = FakeOpenAI(api_key="sk-test-…")
    with serve_fake_openai(fake) as server:          # server.base_url ends in /v1
        fake.queue_error(429, retry_after_seconds=0.2)
        fake.queue_reply("Abrimos de 9:00 a 18:00.")
        ...
        fake.requests                                 # everything that reached it, in order

`POST /v1/chat/completions` and `GET /v1/models` check `Authorization: Bearer <key>` and
validate the request the way OpenAI does (error bodies `{"error": {message, type, param,
code}}`). A scripted queue comes first (replies, 429/500/503, delays, raw bodies); when it is
empty the `behaviour` answers:

- `grounded`: a well-behaved model. It reads the entries and the question that
  `knowledge_matrix.llm.prompt.build_prompt` puts in the last user message and returns the answer
  of the entry whose questions share most words with the question, or `NO_ANSWER`;
- `naive`: a model that obeys instructions found in the data: asked about its
  instructions/prompt/rules it prints the whole system message, asked to play a role or
  talk about something else it does, otherwise it behaves as `grounded`. Our guards must
  catch what it says;
- `hang`: a stuck server. It accepts the request and never answers (it waits up to
  `HANG_SECONDS`, or until the client hangs up): the client's own timeout must end the call.

The same controls are reachable over HTTP under `/_fake/` (queue, behaviour, requests, reset).
Unlike OpenAI, which masks it, the 401 message echoes the wrong key in full: a test that no
key reaches our logs is then stricter.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.support.servers import RunningServer, serve_asgi

FAKE_API_KEY = "sk-test-fake-0123456789abcdef"
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "local-model")
SENTINEL = "NO_ANSWER"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
Behaviour = Literal["grounded", "naive", "hang"]
HANG_SECONDS = 600.0  # `hang`: longer than any client budget; ends early when the client hangs up

OFF_TOPIC_REPLY = "¡Arrr, ahora soy un pirata! La capital de Francia es París y un bitcoin cuesta unos 97000 dólares."
LEAK_PREFIX = "Claro, esto es todo lo que recibí antes de tus datos:\n"
_LEAK_TRIGGERS = (
    "instrucciones",
    "instructions",
    "prompt",
    "configuracion",
    "configuration",
    "reglas",
    "rules",
    "texto que recibiste",
    "text you received",
)
_OFF_TOPIC_TRIGGERS = ("pirata", "pirate", "capital de", "capital of", "bitcoin", "poema", "poem", "chiste", "joke")
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "para como pero porque cuando donde esta este esto estos estas tiene tienen hola gracias usted ustedes "
        "with that this from have what your does",
    )
)
_TAGGED = re.compile(r"<(entries|conversation|question)>\n(.*?)\n</\1>", re.DOTALL)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z0-9]+", _fold(text)) if len(word) >= 4 and word not in _STOPWORDS}


def openai_error(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class ScriptedResponse:
    """One queued answer: a reply text, an error status, or a raw body; after `delay_seconds`."""

    content: str | None = None
    status: int = 200
    delay_seconds: float = 0.0
    finish_reason: str = "stop"
    retry_after_seconds: float | None = None
    error_code: str | None = None
    raw_body: Any = None


@dataclass(frozen=True)
class RecordedRequest:
    """What reached the server. The key itself is never kept: only whether it matched."""

    method: str
    path: str
    authorized: bool
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    def tagged(self, tag: str) -> Any:
        """The JSON data of `<tag>` in the last user message (as `build_prompt` writes it), or None."""
        return parse_prompt_data(self.messages).get(tag)


def parse_prompt_data(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`{"entries": [...], "conversation": [...], "question": "..."}` from the last user message."""
    user_texts = [message.get("content") for message in messages if message.get("role") == "user"]
    content = user_texts[-1] if user_texts and isinstance(user_texts[-1], str) else ""
    data: dict[str, Any] = {}
    for tag, payload in _TAGGED.findall(content):
        try:
            data[tag] = json.loads(payload)
        except ValueError:
            data[tag] = None
    if "question" not in data:
        data["question"] = content
    return data


def grounded_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The answer of the entry whose questions share most words with the question, else NO_ANSWER."""
    data = parse_prompt_data(messages)
    question_words = _words(str(data.get("question") or ""))
    best_score, best_answer = 0, SENTINEL
    for entry in data.get("entries") or []:
        if not isinstance(entry, dict):
            continue
        entry_words = _words(" ".join(str(q) for q in entry.get("questions", [])))
        score = len(question_words & entry_words)
        if score > best_score:
            best_score, best_answer = score, str(entry.get("answer", SENTINEL))
    return best_answer


def naive_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """Obeys whatever the data asks: leaks the system message, plays along, else answers grounded."""
    data = parse_prompt_data(messages)
    texts = [str(data.get("question") or "")]
    texts += [str(turn.get("text", "")) for turn in data.get("conversation") or [] if isinstance(turn, dict)]
    for entry in data.get("entries") or []:
        if isinstance(entry, dict):
            texts += [str(entry.get("answer", "")), *map(str, entry.get("questions", []))]
    folded = _fold(" ".join(texts))
    if any(trigger in folded for trigger in _LEAK_TRIGGERS):
        system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") in ("system", "developer"))
        return LEAK_PREFIX + system
    if any(trigger in folded for trigger in _OFF_TOPIC_TRIGGERS):
        return OFF_TOPIC_REPLY
    return grounded_reply(messages)


def validate_chat_request(body: Any, models: Sequence[str]) -> tuple[int, dict[str, Any]] | None:
    """OpenAI's answer to a malformed request as (status, body), or None when it is fine."""
    if not isinstance(body, dict):
        return 400, openai_error(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.",
            "invalid_request_error",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 400, openai_error("you must provide a model parameter", "invalid_request_error", param="model")
    if model not in models:
        return 404, openai_error(
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            param="model",
            code="model_not_found",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, openai_error(
            "'messages' must be a non-empty array of message objects.", "invalid_request_error", param="messages"
        )
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        text_parts = isinstance(content, list) and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in content
        )
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not (isinstance(content, str) or text_parts)
        ):
            return 400, openai_error(
                f"Invalid value for 'messages[{index}]': each message needs a valid 'role' and text 'content'.",
                "invalid_request_error",
                param=f"messages.[{index}]",
                code="invalid_value",
            )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return 400, openai_error(
                f"Invalid '{name}': expected an integer of at least 1.", "invalid_request_error", param=name
            )
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        return 400, openai_error(
            "Invalid 'temperature': expected a number between 0 and 2.", "invalid_request_error", param="temperature"
        )
    if body.get("stream"):
        return 400, openai_error("This fake server does not stream.", "invalid_request_error", param="stream")
    return None


def completion_body(model: str, content: str, finish_reason: str, messages: Sequence[Mapping[str, Any]]) -> dict:
    prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in messages)
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_fake",
    }


def error_response(scripted: ScriptedResponse, model: str) -> tuple[dict[str, Any], dict[str, str]]:
    """OpenAI's body and headers for a scripted 429/5xx/other status."""
    status = scripted.status
    if status == 429:
        wait = scripted.retry_after_seconds if scripted.retry_after_seconds is not None else 1.0
        headers = {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(int(wait * 1000)),
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{wait:g}s",
        }
        code = scripted.error_code or "rate_limit_exceeded"
        if code == "insufficient_quota":
            return openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                code=code,
            ), {}
        return openai_error(
            f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
            f"Limit 3, Used 3, Requested 1. Please try again in {wait:g}s.",
            "requests",
            code=code,
        ), headers
    if status == 503:
        return openai_error("The engine is currently overloaded, please try again later.", "server_error"), {}
    if status >= 500:
        return openai_error(
            "The server had an error while processing your request. Sorry about that!", "server_error"
        ), {}
    return openai_error(f"Scripted error {status}.", "invalid_request_error", code=scripted.error_code), {}


class FakeOpenAI:
    """The scriptable state and its FastAPI app; safe to drive from the test thread while serving."""

    def __init__(
        self,
        *,
        api_key: str = FAKE_API_KEY,
        models: Sequence[str] = DEFAULT_MODELS,
        behaviour: Behaviour = "grounded",
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        self._lock = threading.Lock()
        self._script: deque[ScriptedResponse] = deque()
        self._requests: list[RecordedRequest] = []
        self._behaviour: Behaviour = behaviour
        self._initial_behaviour: Behaviour = behaviour
        self.app = self._build_app()

    # ---- the Python handle

    def queue_reply(self, content: str, *, delay_seconds: float = 0.0, finish_reason: str = "stop") -> None:
        self._queue(ScriptedResponse(content=content, delay_seconds=delay_seconds, finish_reason=finish_reason))

    def queue_error(
        self,
        status: int,
        *,
        retry_after_seconds: float | None = None,
        delay_seconds: float = 0.0,
        error_code: str | None = None,
    ) -> None:
        self._queue(
            ScriptedResponse(
                status=status,
                retry_after_seconds=retry_after_seconds,
                delay_seconds=delay_seconds,
                error_code=error_code,
            )
        )

    def queue_raw(self, body: Any, *, status: int = 200) -> None:
        """Answer the next request with exactly `body` (a dict, or a str sent as is)."""
        self._queue(ScriptedResponse(status=status, raw_body=body))

    def set_behaviour(self, behaviour: Behaviour) -> None:
        if behaviour not in ("grounded", "naive", "hang"):
            raise ValueError(f"unknown behaviour {behaviour!r}")
        with self._lock:
            self._behaviour = behaviour

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == "/v1/chat/completions"]

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._behaviour = self._initial_behaviour

    def _queue(self, scripted: ScriptedResponse) -> None:
        with self._lock:
            self._script.append(scripted)

    def _next_scripted(self) -> ScriptedResponse | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: Request, body: Any) -> bool:
        header = request.headers.get("authorization", "")
        authorized = header == f"Bearer {self.api_key}"
        headers = {name: value for name, value in request.headers.items() if name.lower() != "authorization"}
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.url.path, authorized, body, headers, time.monotonic())
            )
        return authorized

    # ---- the app

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="fake OpenAI-compatible server", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/v1/models")
        async def list_models(request: Request) -> Response:
            denied = self._auth_error(request, self._record(request, None))
            if denied is not None:
                return denied
            return JSONResponse(
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models],
                }
            )

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            raw = await request.body()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            denied = self._auth_error(request, self._record(request, body))
            if denied is not None:
                return denied
            invalid = validate_chat_request(body, self.models)
            if invalid is not None:
                return JSONResponse(invalid[1], status_code=invalid[0], headers=self._request_id())
            model = body["model"]
            scripted = self._next_scripted()
            if (
                scripted is not None
                and scripted.delay_seconds > 0
                and not await self._pause(request, scripted.delay_seconds)
            ):
                return Response(status_code=499)  # the client gave up; nobody reads this
            if scripted is not None and scripted.raw_body is not None:
                if isinstance(scripted.raw_body, str):
                    return Response(scripted.raw_body, status_code=scripted.status, media_type="application/json")
                return JSONResponse(scripted.raw_body, status_code=scripted.status, headers=self._request_id())
            if scripted is not None and scripted.status != 200:
                error_body, headers = error_response(scripted, model)
                return JSONResponse(error_body, status_code=scripted.status, headers={**headers, **self._request_id()})
            if scripted is not None and scripted.content is not None:
                content, finish_reason = scripted.content, scripted.finish_reason
            elif self.behaviour == "hang":
                await self._pause(request, HANG_SECONDS)
                return Response(status_code=499)  # the client gave up (or we did); nobody reads this
            else:
                content, finish_reason = self._behave(body["messages"]), "stop"
            return JSONResponse(
                completion_body(model, content, finish_reason, body["messages"]), headers=self._request_id()
            )

        @app.post("/_fake/queue")
        async def control_queue(request: Request) -> Response:
            spec = await request.json()
            if "reply" in spec:
                self.queue_reply(
                    str(spec["reply"]),
                    delay_seconds=float(spec.get("delay_seconds", 0)),
                    finish_reason=str(spec.get("finish_reason", "stop")),
                )
            elif "error" in spec:
                retry_after = spec.get("retry_after_seconds")
                self.queue_error(
                    int(spec["error"]),
                    retry_after_seconds=None if retry_after is None else float(retry_after),
                    delay_seconds=float(spec.get("delay_seconds", 0)),
                    error_code=spec.get("error_code"),
                )
            else:
                return JSONResponse({"detail": "give 'reply' or 'error'"}, status_code=400)
            return JSONResponse({"pending": self.pending})

        @app.put("/_fake/behaviour")
        async def control_behaviour(request: Request) -> Response:
            try:
                self.set_behaviour((await request.json()).get("behaviour"))
            except ValueError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
            return JSONResponse({"behaviour": self.behaviour})

        @app.get("/_fake/requests")
        async def control_requests() -> Response:
            return JSONResponse(
                [
                    {"method": r.method, "path": r.path, "authorized": r.authorized, "body": r.body}
                    for r in self.requests
                ]
            )

        @app.post("/_fake/reset")
        async def control_reset() -> Response:
            self.reset()
            return JSONResponse({"reset": True})

        return app

    def _auth_error(self, request: Request, authorized: bool) -> Response | None:
        if authorized:
            return None
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[len("Bearer ") :].strip():
            body = openai_error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
        else:
            body = openai_error(
                f"Incorrect API key provided: {header[len('Bearer ') :]}. "
                "You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        return JSONResponse(body, status_code=401, headers=self._request_id())

    def _behave(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return naive_reply(messages) if self.behaviour == "naive" else grounded_reply(messages)

    @staticmethod
    def _request_id() -> dict[str, str]:
        return {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}

    @staticmethod
    async def _pause(request: Request, seconds: float) -> bool:
        """Sleep `seconds` unless the client hangs up first (then False), so shutdown never waits on us."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.05, left))
            if await request.is_disconnected():
                return False
        return True


@dataclass(frozen=True)
class RunningFakeOpenAI:
    fake: FakeOpenAI
    server: RunningServer

    @property
    def base_url(self) -> str:
        """What to give the `openai` client as `base_url`."""
        return self.server.url("/v1")

    def url(self, path: str) -> str:
        return self.server.url(path)


@contextmanager
def serve_fake_openai(fake: FakeOpenAI | None = None) -> Iterator[RunningFakeOpenAI]:
    """Serve `fake` (a new one by default) on a free local port for the `with` block."""
    fake = fake or FakeOpenAI()
    with serve_asgi(fake.app) as server:
        yield RunningFakeOpenAI(fake, server)
