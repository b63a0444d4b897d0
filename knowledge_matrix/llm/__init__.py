"""The GPT fallback: a short answer from the top matrix entries alone, or "offer a person".

Retrieval found entries but no confident match; a chat model may still find the answer in
them. Everything here errs towards `no_answer`, because the caller then offers a person,
which is always safe, while a wrong price or an obeyed injection is not:

- no key configured, no entries, an empty question or an obvious injection attempt: no call;
- the model sees the rules in the system message and everything else (entries, the last
  turns, the question) as JSON inside tags, with `<`/`>` escaped so no data can close a tag;
- one wall-clock budget (`LLM_TIMEOUT_SECONDS`) covers every attempt and every wait, and a
  retry happens only when it still fits in that budget;
- the reply must be the sentinel (`NO_ANSWER`) or an answer that does not quote our rules and
  is grounded in the entries: its numbers, prices, links, e-mails and phones appear there,
  and most of its content words too.

One module per concept, lowest first (each imports only those before it):

- `settings`: `LLMSettings`, read from `LLM_*` by `load_llm_settings`;
- `client`: the `LLMClient` seam, the OpenAI-compatible client, and the calls within one deadline (retries);
- `injection`: the cheap pre-check for obvious injection attempts;
- `claims`: the checkable facts of a text (e-mails, links, phones, amounts, numbers, disguised ones too);
- `grounding`: the entries the model may answer from, and whether a reply is built from them;
- `prompt`: the grounded prompt (rules, entries, last turns, question) and the `NO_ANSWER` sentinel;
- `fake`: `FakeLLMClient`, in memory, with the client's contract;
- `guard`: what a reply must satisfy before it is sent (no sentinel, no leak of the rules, grounded, short);
- `fallback`: `answer_with_fallback`, the thin orchestration the knowledge action calls.

The errors are in `knowledge_matrix.errors` (`LLMError` and below). This package re-exports nothing:
import each name from its module. Everything logs under `knowledge_matrix.llm`.
"""
