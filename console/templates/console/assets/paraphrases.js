// «Formas de preguntar sugeridas»: start a job (the model proposes ways of asking per entry), follow its progress,
// accept or reject each proposal (or all of an entry), then make a draft with the accepted ones and publish it.
// Helpers come from console.js (window.consoleKit); texts written by the model are only ever set with textContent.
"use strict";

(function () {
  const kit = window.consoleKit;
  if (!kit) return;
  const { api, toast, showReport, publishDraft } = kit;
  if (document.body.dataset.page !== "knowledge-paraphrases") return;
  const API = "/api/console/knowledge/paraphrases";
  let draft = null;

  function renderJob(job) {
    if (!job) return;
    document.getElementById("paraphrase-job").hidden = false;
    document.getElementById("job-status").textContent = job.status_es;
    document.getElementById("job-counts").textContent = job.done_entries + " de " + job.total_entries + " entradas · " + job.proposed + " propuestas · " + job.filtered + " descartadas";
    const bar = document.getElementById("job-progress");
    bar.value = job.percent;
    bar.textContent = job.percent + " %";
    const error = document.getElementById("job-error");
    error.textContent = job.error_es || "";
    error.hidden = !job.error_es;
  }

  async function follow(job) {
    renderJob(job);
    while (job.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      try { job = await api("GET", API + "/jobs/" + job.id); } catch (error) { toast(error.message, true); return; }
      renderJob(job);
    }
    location.reload();  // the proposals it found
  }

  const form = document.getElementById("paraphrase-job-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const draftId = document.getElementById("paraphrase-draft-id").value.trim();
      const button = document.getElementById("paraphrase-start");
      button.disabled = true;
      try {
        await follow(await api("POST", API + "/jobs", { draft_id: draftId || null }));
      } catch (error) { toast(error.message, true); }
      finally { button.disabled = false; }
    });
  }

  const data = kit.pageData();
  if (data.overview.job && data.overview.job.status === "running") follow(data.overview.job);

  const entries = document.getElementById("paraphrase-entries");
  entries.addEventListener("click", async (event) => {
    const one = event.target.closest("button.decide");
    const all = event.target.closest("button.decide-entry");
    try {
      if (one) {
        const item = one.closest("li");
        const answer = await api("POST", API + "/" + encodeURIComponent(item.dataset.paraphraseId) + "/decision", { status: one.dataset.status });
        if (answer.status === "rejected") item.remove();
        else { item.dataset.status = answer.status; item.querySelector(".paraphrase-status").textContent = "Aceptada"; }
      } else if (all) {
        const section = all.closest("section.paraphrase-entry");
        await api("POST", API + "/entry-decision", { entry_id: section.dataset.entryId, status: all.dataset.status });
        location.reload();
        return;
      } else return;
      const accepted = entries.querySelectorAll("li[data-status='accepted']").length;
      document.getElementById("accepted-count").textContent = accepted;
      document.getElementById("paraphrase-draft-button").disabled = accepted === 0;
    } catch (error) { toast(error.message, true); }
  });

  document.getElementById("paraphrase-draft-button").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const answer = await api("POST", API + "/draft");
      draft = answer.draft;
      showReport(draft, draft.ok
        ? answer.added + " pregunta(s) aceptada(s) en el borrador: " + draft.entry_count + " entradas" + (draft.warning_count ? " (" + draft.warning_count + " advertencias: revíselas)." : ".") + " Publíquelo para que el chatbot lo use."
        : "El borrador tiene " + draft.error_count + " error(es): corríjalos. La versión publicada sigue respondiendo.");
      document.getElementById("report-card").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (error) { toast(error.message, true); button.disabled = false; }
  });

  document.getElementById("publish-button").addEventListener("click", async () => {
    if (!draft) return;
    await publishDraft(draft.id, async (answer) => { toast("Matriz publicada: versión " + answer.version.id + "."); });
  });
})();
