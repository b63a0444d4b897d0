// «Preguntas sin respuesta»: a group's page. The editor adds the group's wording to an entry (a suggested one or
// another by its id) or starts a new entry; either makes a draft (the live matrix plus that change) whose validation
// report shows here, and «Publicar» publishes it through the knowledge editor (which marks the group resolved).
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
