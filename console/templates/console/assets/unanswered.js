// «Preguntas sin respuesta»: a group's page. The editor adds the group's wording to an entry (a suggested one or
// another by its id) or starts a new entry; either makes a draft (the live matrix plus that change) whose validation
// report shows here, and «Publicar» publishes it through the knowledge editor (which marks the group resolved).
// Learning from use: «Sugerencias» (accept: the same kind of draft; reject: hidden) and, on a conversation's page,
// «Responder con una entrada» (the entry's answer goes to the reply box; its id goes with the reply).
// Helpers come from console.js (window.consoleKit); texts typed by customers are only ever set with textContent.
"use strict";

(function () {
  const kit = window.consoleKit;
  if (!kit) return;
  const { api, toast, pageData, showReport, publishDraft } = kit;
  if (document.body.dataset.page !== "unanswered-group") return;
  const data = pageData();
  const group = data.group;
  const API = "/api/console/unanswered/" + encodeURIComponent(group.id);
  let draft = null;
  const publishButton = document.getElementById("publish-button");

  function renderReport(d, what) {
    draft = d;
    showReport(d, d.ok
      ? what + " Borrador listo: " + d.entry_count + " entradas" + (d.warning_count ? " (" + d.warning_count + " advertencias: revíselas)." : ".") + " Publíquelo para que el chatbot lo use."
      : "El borrador tiene " + d.error_count + " error(es): corríjalos y vuelva a prepararlo. La versión publicada sigue respondiendo.");
    publishButton.textContent = "Publicar este borrador";
    document.getElementById("report-card").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  async function making(button, busyText, work) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = busyText;
    try { await work(); } catch (error) { toast(error.message, true); }
    finally { button.disabled = false; button.textContent = label; }
  }

  async function addToEntry(entryId, button) {
    const question = document.getElementById("add-question").value.trim();
    if (!entryId || !question) { toast("Escriba la pregunta y elija la entrada.", true); return; }
    await making(button, "Preparando…", async () => {
      const answer = await api("POST", API + "/add-to-entry", { entry_id: entryId, question });
      renderReport(answer.draft, "«" + question + "» se agrega a la entrada «" + entryId + "».");
    });
  }

  for (const button of document.querySelectorAll("button.add-to-entry")) {
    button.addEventListener("click", () => addToEntry(button.dataset.entryId, button));
  }

  const otherForm = document.getElementById("other-entry-form");
  if (otherForm) {
    otherForm.addEventListener("submit", (event) => {
      event.preventDefault();
      addToEntry(document.getElementById("other-entry").value.trim(), otherForm.querySelector("button"));
    });
  }

  const newForm = document.getElementById("new-entry-form");
  if (newForm) {
    newForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const entryId = document.getElementById("new-entry-id").value.trim();
      const questions = document.getElementById("new-entry-questions").value.split("\n").map((q) => q.trim()).filter(Boolean);
      const answerText = document.getElementById("new-entry-answer").value.trim();
      await making(newForm.querySelector("button[type=submit]"), "Preparando…", async () => {
        const answer = await api("POST", API + "/new-entry", { entry_id: entryId, questions, answer: answerText });
        renderReport(answer.draft, "Entrada nueva «" + entryId + "» con " + questions.length + " pregunta(s).");
      });
    });
  }

  publishButton.addEventListener("click", async () => {
    if (!draft) return;
    await publishDraft(draft.id, async (answer) => {
      toast("Matriz publicada: versión " + answer.version.id + ". El grupo queda resuelto.");
      setTimeout(() => location.reload(), 800);
    });
  });

  const dismiss = document.getElementById("dismiss-button");
  if (dismiss) {
    dismiss.addEventListener("click", async () => {
      if (!confirm("¿Descartar este grupo? No volverá a aparecer en la lista, y las preguntas parecidas que lleguen después se sumarán a él sin aparecer tampoco.")) return;
      await making(dismiss, "Descartando…", async () => {
        await api("POST", API + "/dismiss");
        toast("Grupo descartado.");
        location.href = "/console/unanswered";
      });
    });
  }
})();

// «Sugerencias»: accept makes a draft with the wording (as corrected in its box) added to the entry, shown with its
// report; reject hides the row. Either is remembered by the server.
(function () {
  const kit = window.consoleKit;
  if (!kit || document.body.dataset.page !== "unanswered-proposals") return;
  const { api, toast, showReport, publishDraft } = kit;
  const API = "/api/console/unanswered/proposals/";
  const publishButton = document.getElementById("publish-button");
  let draft = null;

  function leaveRow(row, text) {
    row.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    row.dataset.status = "decided";
    row.lastElementChild.textContent = text;
  }

  for (const row of document.querySelectorAll("#proposal-rows tr")) {
    const id = row.dataset.proposalId;
    const accept = row.querySelector("button.accept-proposal");
    const reject = row.querySelector("button.reject-proposal");
    if (accept) {
      accept.addEventListener("click", async () => {
        const wording = row.querySelector(".proposal-wording");
        const question = (wording.value !== undefined ? wording.value : wording.textContent).trim();
        if (!question) { toast("Escriba la pregunta que se agrega.", true); return; }
        accept.disabled = true;
        try {
          const answer = await api("POST", API + encodeURIComponent(id) + "/accept", { question });
          draft = answer.draft;
          const what = "«" + question + "» se agrega a la entrada «" + answer.proposal.entry_id + "».";
          showReport(draft, draft.ok
            ? what + " Borrador listo: " + draft.entry_count + " entradas" + (draft.warning_count ? " (" + draft.warning_count + " advertencias: revíselas)." : ".") + " Publíquelo para que el chatbot lo use."
            : "El borrador tiene " + draft.error_count + " error(es). La versión publicada sigue respondiendo.");
          publishButton.textContent = "Publicar este borrador";
          if (row.dataset.status === "open") leaveRow(row, "Aceptada: borrador preparado.");
          document.getElementById("report-card").scrollIntoView({ behavior: "smooth", block: "start" });
        } catch (error) {
          toast(error.message, true);
        } finally {
          if (row.dataset.status !== "decided") accept.disabled = false;
        }
      });
    }
    if (reject) {
      reject.addEventListener("click", async () => {
        reject.disabled = true;
        try {
          await api("POST", API + encodeURIComponent(id) + "/reject");
          leaveRow(row, "Rechazada: no volverá a sugerirse.");
          toast("Sugerencia rechazada.");
        } catch (error) {
          toast(error.message, true);
          reject.disabled = false;
        }
      });
    }
  }

  publishButton.addEventListener("click", async () => {
    if (!draft) return;
    await publishDraft(draft.id, async (answer) => {
      toast("Matriz publicada: versión " + answer.version.id + ". El chatbot ya reconoce esa forma de preguntar.");
    });
  });
})();

// «Responder con una entrada» on a conversation's page: search the live matrix's entries; the chosen entry's answer
// replaces the reply box's text and its id waits on the box (data-entry-id) for the reply console.js sends.
(function () {
  const kit = window.consoleKit;
  if (!kit || document.body.dataset.page !== "conversation") return;
  const { api, el, toast } = kit;
  const search = document.getElementById("entry-search");
  const results = document.getElementById("entry-results");
  const textArea = document.getElementById("reply-text");
  if (!search || !results || !textArea) return;
  let asked = 0;

  async function find() {
    const mine = ++asked;
    try {
      const answer = await api("GET", "/api/console/entries?limit=10&q=" + encodeURIComponent(search.value.trim()));
      if (mine !== asked) return;  // a newer search is on its way
      results.replaceChildren(...answer.entries.map((entry) => el("li", { dataset: { entryId: entry.id } },
        el("button", { type: "button", class: "link use-entry", dataset: { entryId: entry.id } }, entry.id),
        " · ", el("span", { class: "entry-question" }, entry.question),
        el("br"), el("span", { class: "small muted" }, entry.answer.length > 140 ? entry.answer.slice(0, 140) + "…" : entry.answer))));
      if (!answer.entries.length) results.replaceChildren(el("li", { class: "muted" }, "Ninguna entrada tiene esas palabras."));
      for (const button of results.querySelectorAll("button.use-entry")) {
        const entry = answer.entries.find((e) => e.id === button.dataset.entryId);
        button.addEventListener("click", () => {
          textArea.value = entry.answer;
          textArea.dataset.entryId = entry.id;
          textArea.dispatchEvent(new Event("input"));
          textArea.focus();
          toast("Respuesta de «" + entry.id + "» lista en el cuadro: revísela y pulse Enviar.");
        });
      }
    } catch (error) {
      toast(error.message, true);
    }
  }

  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(find, 250); });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); clearTimeout(timer); find(); }  // not the reply form's submit
  });
  document.getElementById("entry-picker").addEventListener("toggle", (event) => {
    if (event.target.open && !results.children.length) find();
  });
  textArea.addEventListener("input", () => { if (!textArea.value.trim()) delete textArea.dataset.entryId; });
})();
