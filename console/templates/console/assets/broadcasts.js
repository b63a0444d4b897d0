// «Transmisiones»: the compose page (save, «Vista previa de envío», send now or schedule) and the report page
// (refreshed while sending, retry, cancel). Helpers come from console.js (window.consoleKit); names and texts typed by
// people are only ever set with textContent.
"use strict";

(function () {
  const kit = window.consoleKit;
  if (!kit) return;
  const { api, el, toast, pageData } = kit;
  const pageName = document.body.dataset.page;
  const API = "/api/console/broadcasts";
  const MAX_BUTTONS = 3;
  const MAX_QUICK_REPLIES = 13;

  function isoOrNull(localValue) {
    // A datetime-local value is the admin's local time: sent as an ISO instant (UTC).
    if (!localValue) return null;
    const at = new Date(localValue);
    return isNaN(at) ? localValue : at.toISOString();
  }

  function localValue(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    if (isNaN(at)) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
  }

  function showError(error) {
    const box = document.getElementById("broadcast-error");
    const message = error && error.message ? error.message : String(error);
    const field = error && error.body && error.body.error && error.body.error.field;
    if (box) {
      box.textContent = field ? `${message} (campo: ${field})` : message;
      box.hidden = false;
    }
    toast(message, true);
  }

  // --- compose -----------------------------------------------------------------------------------------------------

  function startRow(kindClass, valueClass, kinds, start) {
    const select = el("select", { class: kindClass, "aria-label": "Qué inicia" },
      ...kinds.map(([value, label]) => el("option", { value }, label)));
    const value = el("input", { class: valueClass, maxlength: "100", placeholder: "intención o id de la entrada" });
    if (start && start.intent) { select.value = "intent"; value.value = start.intent; }
    else if (start && start.entry_id) { select.value = "entry_id"; value.value = start.entry_id; }
    return [select, value];
  }

  function addButtonRow(button) {
    const list = document.getElementById("buttons-list");
    if (list.children.length >= MAX_BUTTONS) { toast(`Un mensaje admite como máximo ${MAX_BUTTONS} botones.`, true); return; }
    const title = el("input", { class: "button-title", maxlength: "20", placeholder: "Ver el menú", "aria-label": "Título del botón" });
    const [kind, value] = startRow("button-kind", "button-value",
      [["url", "Abre la dirección https://"], ["intent", "Inicia la intención"], ["entry_id", "Responde la entrada de la matriz"]],
      button && button.start);
    if (button) {
      title.value = button.title || "";
      if (button.url) { kind.value = "url"; value.value = button.url; }
    }
    const remove = el("button", { type: "button", class: "link danger" }, "Quitar");
    const row = el("div", { class: "row button-row" }, title, kind, value, remove);
    remove.addEventListener("click", () => { row.remove(); changed(); });
    list.append(row);
  }

  function addQuickReplyRow(reply) {
    const list = document.getElementById("quick-replies-list");
    if (list.children.length >= MAX_QUICK_REPLIES) {
      toast(`Un mensaje admite como máximo ${MAX_QUICK_REPLIES} respuestas rápidas.`, true); return;
    }
    const title = el("input", { class: "qr-title", maxlength: "20", placeholder: "Sí, quiero", "aria-label": "Título de la respuesta rápida" });
    const [kind, value] = startRow("qr-kind", "qr-value",
      [["", "El chatbot lee el título"], ["intent", "Inicia la intención"], ["entry_id", "Responde la entrada de la matriz"]],
      reply && reply.start);
    if (reply) title.value = reply.title || "";
    const remove = el("button", { type: "button", class: "link danger" }, "Quitar");
    const row = el("div", { class: "row qr-row" }, title, kind, value, remove);
    remove.addEventListener("click", () => { row.remove(); changed(); });
    list.append(row);
  }

  function startOf(kind, value) {
    const text = value.trim();
    if (!kind || !text) return null;
    return kind === "intent" ? { intent: text } : { entry_id: text };
  }

  const composer = { id: null, image: null, dryRunFresh: false };

  function selected(id) {
    return Array.from(document.getElementById(id).selectedOptions, (option) => option.value);
  }

  function fieldsOf(text) {
    const fields = {};
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      if (at < 0) throw new Error(`En «Campos», escriba cada línea como campo=valor («${line.trim().slice(0, 40)}»).`);
      fields[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return fields;
  }

  function draftBody() {
    const text = document.getElementById("broadcast-text").value;
    const imageUrl = document.getElementById("broadcast-image-url").value.trim();
    const content = {
      text: text.trim() ? text : null,
      image: composer.image ? { attachment_id: composer.image.attachment_id } : imageUrl ? { url: imageUrl } : null,
      buttons: Array.from(document.querySelectorAll("#buttons-list .button-row"), (row) => {
        const kind = row.querySelector(".button-kind").value;
        const value = row.querySelector(".button-value").value;
        const title = row.querySelector(".button-title").value;
        return kind === "url" ? { title, url: value.trim() } : { title, start: startOf(kind, value) };
      }),
      quick_replies: Array.from(document.querySelectorAll("#quick-replies-list .qr-row"), (row) => ({
        title: row.querySelector(".qr-title").value,
        start: startOf(row.querySelector(".qr-kind").value, row.querySelector(".qr-value").value),
      })),
    };
    const audience = {
      tags_any: selected("audience-tags-any"),
      tags_none: selected("audience-tags-none"),
      fields: fieldsOf(document.getElementById("audience-fields").value),
      campaign: document.getElementById("audience-campaign").value.trim() || null,
      last_interaction_after: isoOrNull(document.getElementById("audience-after").value),
      last_interaction_before: isoOrNull(document.getElementById("audience-before").value),
    };
    const promotional = document.getElementById("promotional-yes").checked;
    return {
      page_id: document.getElementById("broadcast-page").value || null,
      name: document.getElementById("broadcast-name").value,
      content, audience, promotional,
      tag: promotional ? null : (document.getElementById("broadcast-tag").value || null),
    };
  }

  function fill(broadcast) {
    composer.id = broadcast.id;
    document.getElementById("broadcast-name").value = broadcast.name;
    document.getElementById("broadcast-page").value = broadcast.page_id;
    const content = broadcast.content || {};
    document.getElementById("broadcast-text").value = content.text || "";
    if (content.image && content.image.url) document.getElementById("broadcast-image-url").value = content.image.url;
    if (content.image && content.image.attachment_id) {
      composer.image = { attachment_id: content.image.attachment_id };
      document.getElementById("broadcast-image").hidden = false;
      document.getElementById("broadcast-image-preview").hidden = true;
      document.getElementById("broadcast-image-name").textContent = "Imagen subida";
    }
    for (const button of content.buttons || []) addButtonRow(button);
    for (const reply of content.quick_replies || []) addQuickReplyRow(reply);
    document.getElementById(broadcast.promotional ? "promotional-yes" : "promotional-no").checked = true;
    document.getElementById("broadcast-tag").value = broadcast.tag || "";
    const audience = broadcast.audience || {};
    for (const [id, values] of [["audience-tags-any", audience.tags_any], ["audience-tags-none", audience.tags_none]]) {
      const select = document.getElementById(id);
      for (const value of values || []) {
        let option = Array.from(select.options).find((o) => o.value === value);
        if (!option) { option = el("option", { value }, value); select.append(option); }
        option.selected = true;
      }
    }
    document.getElementById("audience-fields").value =
      Object.entries(audience.fields || {}).map(([key, value]) => `${key}=${value}`).join("\n");
    document.getElementById("audience-campaign").value = audience.campaign || "";
    document.getElementById("audience-after").value = localValue(audience.last_interaction_after);
    document.getElementById("audience-before").value = localValue(audience.last_interaction_before);
  }

  function changed() {
    composer.dryRunFresh = false;
    document.getElementById("send-now").disabled = true;
    document.getElementById("schedule").disabled = true;
    document.getElementById("send-hint").hidden = false;
    document.getElementById("broadcast-text-count").textContent = String(document.getElementById("broadcast-text").value.length);
    document.getElementById("broadcast-tag-label").hidden = document.getElementById("promotional-yes").checked;
  }

  function showDryRun(result) {
    const box = document.getElementById("dry-run-result");
    const contacts = (n) => `${n} contacto${n === 1 ? "" : "s"}`;
    document.getElementById("dry-run-summary").textContent =
      `De ${contacts(result.audience)} de la audiencia, la recibirán ${result.will_send}` +
      (result.will_send ? ` (el envío tarda ${result.estimated_es}).` : ".") +
      ` Con la ventana de 24 horas cerrada: ${result.outside_window}.`;
    const body = document.querySelector("#dry-run-skipped tbody");
    body.replaceChildren(...Object.entries(result.skipped).map(([code, count]) => el("tr", { dataset: { reason: code } },
      el("td", null, result.reasons_es[code] || code), el("td", { class: "count" }, String(count)),
      el("td", { class: "small" }, (result.examples[code] || []).join(", ")))));
    document.getElementById("dry-run-skipped").hidden = !Object.keys(result.skipped).length;
    box.hidden = false;
  }

  async function save() {
    const body = draftBody();
    const answer = composer.id
      ? await api("PUT", `${API}/${composer.id}`, body)
      : await api("POST", API, body);
    composer.id = answer.broadcast.id;
    history.replaceState(null, "", `/console/broadcasts/${composer.id}/edit`);
    return answer.broadcast;
  }

  async function busy(button, work) {
    button.disabled = true;
    document.getElementById("broadcast-error").hidden = true;
    try { await work(); } catch (error) { showError(error); } finally { button.disabled = false; }
  }

  function initCompose() {
    const data = pageData();
    const form = document.getElementById("broadcast-form");
    if (data.broadcast) fill(data.broadcast);
    changed();
    // Any change to the broadcast asks for a new preview before it can go (the time to schedule it is not one).
    const edited = (event) => { if (event.target.id !== "send-at") changed(); };
    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
    form.addEventListener("submit", (event) => event.preventDefault());
    document.getElementById("add-button").addEventListener("click", () => { addButtonRow(null); changed(); });
    document.getElementById("add-quick-reply").addEventListener("click", () => { addQuickReplyRow(null); changed(); });

    const fileInput = document.getElementById("broadcast-image-file");
    fileInput.addEventListener("change", async () => {
      const file = fileInput.files && fileInput.files[0];
      if (!file) return;
      const upload = new FormData();
      upload.append("file", file);
      upload.append("page_id", document.getElementById("broadcast-page").value);
      try {
        const answer = await api("POST", `${API}/images`, upload);
        composer.image = answer;
        document.getElementById("broadcast-image-url").value = "";
        const preview = document.getElementById("broadcast-image-preview");
        preview.src = answer.preview_url;
        preview.hidden = false;
        document.getElementById("broadcast-image-name").textContent = answer.filename;
        document.getElementById("broadcast-image").hidden = false;
        toast("Imagen subida a Facebook.");
      } catch (error) {
        showError(error);
      } finally {
        fileInput.value = "";
        changed();
      }
    });
    document.getElementById("broadcast-image-remove").addEventListener("click", () => {
      composer.image = null;
      document.getElementById("broadcast-image").hidden = true;
      changed();
    });

    const saveButton = document.getElementById("save-draft");
    saveButton.addEventListener("click", () => busy(saveButton, async () => {
      await save();
      toast("Borrador guardado.");
    }));
    const dryRunButton = document.getElementById("dry-run");
    dryRunButton.addEventListener("click", () => busy(dryRunButton, async () => {
      const result = await api("POST", `${API}/dry-run`, draftBody());
      showDryRun(result);
      composer.dryRunFresh = true;
      document.getElementById("send-now").disabled = false;
      document.getElementById("schedule").disabled = false;
      document.getElementById("send-hint").hidden = true;
    }));
    async function send(sendAt) {
      if (!composer.dryRunFresh) throw new Error("Haga primero la vista previa de envío.");
      const broadcast = await save();
      await api("POST", `${API}/${broadcast.id}/send`, { send_at: sendAt });
      location.href = `/console/broadcasts/${broadcast.id}`;
    }
    const sendNow = document.getElementById("send-now");
    sendNow.addEventListener("click", () => busy(sendNow, () => send(null)));
    const schedule = document.getElementById("schedule");
    schedule.addEventListener("click", () => busy(schedule, async () => {
      const at = document.getElementById("send-at").value;
      if (!at) throw new Error("Elija la fecha y la hora del envío.");
      await send(isoOrNull(at));
    }));
    const remove = document.getElementById("delete-broadcast");
    if (remove) remove.addEventListener("click", () => busy(remove, async () => {
      await api("DELETE", `${API}/${composer.id}`);
      location.href = "/console/broadcasts";
    }));
  }

  // --- report ------------------------------------------------------------------------------------------------------

  const ACTIVE = ["scheduled", "sending"];
  const REFRESH_ACTIVE_MS = 2000;
  const REFRESH_DONE_MS = 15000;

  function fillReasons(id, counts, reasons) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...Object.keys(counts).sort().map((code) => el("tr", { dataset: { reason: code } },
      el("td", null, reasons[code] || code), el("td", { class: "count" }, String(counts[code])))));
    document.getElementById(`${id}-empty`).hidden = Object.keys(counts).length > 0;
  }

  function showReport(report) {
    const section = document.getElementById("report");
    const broadcast = report.broadcast;
    section.dataset.status = broadcast.status;
    const status = document.getElementById("report-status");
    status.textContent = broadcast.status_es;
    status.className = `badge ${broadcast.status}`;
    for (const key of ["total", "queued", "sent", "delivered", "read", "retryable"]) {
      document.getElementById(`report-${key}`).textContent = String(report[key]);
    }
    fillReasons("report-skipped", report.skipped, report.reasons_es);
    fillReasons("report-blocked", report.blocked, report.reasons_es);
    fillReasons("report-failed", report.failed, report.reasons_es);
    document.getElementById("retry-failed").disabled = !report.retryable;
    document.getElementById("report-partial").textContent = String(report.partial || 0);
    document.getElementById("report-partial-note").hidden = !report.partial;
    const cancel = document.getElementById("cancel-broadcast");
    if (cancel && !ACTIVE.includes(broadcast.status)) cancel.hidden = true;
    document.getElementById("report-refresh").textContent =
      ACTIVE.includes(broadcast.status) ? "Se actualiza sola mientras se envía." : "";
  }

  function initReport() {
    const section = document.getElementById("report");
    const id = section.dataset.broadcastId;
    let timer = null;
    async function refresh() {
      try {
        showReport(await api("GET", `${API}/${id}/report`));
      } catch (error) {
        if (error.status !== 401) toast(error.message, true);
      }
      schedule();
    }
    function schedule() {
      clearTimeout(timer);
      const status = section.dataset.status;
      if (status === "draft" || status === "cancelled") return;
      timer = setTimeout(refresh, ACTIVE.includes(status) ? REFRESH_ACTIVE_MS : REFRESH_DONE_MS);
    }
    schedule();

    const retry = document.getElementById("retry-failed");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        const result = await api("POST", `${API}/${id}/retry-failed`);
        const refused = Object.entries(result.still_refused)
          .map(([code, count]) => `${count}: ${result.reasons_es[code] || code}`).join("; ");
        toast(`Se reintentan ${result.requeued}.` + (refused ? ` Todavía no se pueden enviar: ${refused}.` : ""));
        await refresh();
      } catch (error) {
        toast(error.message, true);
        retry.disabled = false;
      }
    });
    const cancel = document.getElementById("cancel-broadcast");
    if (cancel) cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api("POST", `${API}/${id}/cancel`);
        toast("Transmisión cancelada: lo que no salió ya no se envía.");
        await refresh();
      } catch (error) {
        toast(error.message, true);
        cancel.disabled = false;
      }
    });
    const remove = document.getElementById("delete-broadcast");
    if (remove) remove.addEventListener("click", async () => {
      try {
        await api("DELETE", `${API}/${id}`);
        location.href = "/console/broadcasts";
      } catch (error) {
        toast(error.message, true);
      }
    });
  }

  function localTimes() {
    // Times come from the server in UTC; each admin reads them in their own computer's time.
    for (const time of document.querySelectorAll("time.local-time[datetime]")) {
      const iso = time.getAttribute("datetime");
      if (!iso || isNaN(new Date(iso))) continue;
      time.title = `${iso.slice(0, 16).replace("T", " ")} UTC`;
      time.textContent = kit.dateTime(iso);
    }
  }

  localTimes();
  const pages = { "broadcast-compose": initCompose, "broadcast-report": initReport };
  if (pages[pageName]) pages[pageName]();
})();
