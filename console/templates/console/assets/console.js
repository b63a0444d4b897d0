// The console's pages: actions through the JSON API (with the session's CSRF token), live updates through
// server-sent events. Text from customers is only ever set with textContent.
"use strict";

(function () {
  const csrfToken = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const pageName = document.body.dataset.page;

  class ApiError extends Error {
    constructor(message, status, body) { super(message); this.status = status; this.body = body; }
  }

  function newReplyKey() {
    const bytes = new Uint8Array(18);
    crypto.getRandomValues(bytes);  // unlike randomUUID, available without https too
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken } };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) {
      location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
      throw new ApiError("Su sesión terminó; inicie sesión de nuevo.", 401, data);
    }
    if (!response.ok) {
      const message = (data && data.error && data.error.message) || ("Error " + response.status);
      throw new ApiError(message, response.status, data);
    }
    return data;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let toastTimer = null;
  function toast(message, isError) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.className = isError ? "error" : "";
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 3500);
  }

  function pageData() {
    const node = document.getElementById("page-data");
    return node ? JSON.parse(node.textContent) : {};
  }

  function hhmm(iso) {
    const at = new Date(iso);
    return isNaN(at) ? "" : at.toLocaleTimeString("es-EC", { hour: "2-digit", minute: "2-digit" });
  }

  function dateTime(iso) {
    const at = new Date(iso);
    return isNaN(at) ? iso : at.toLocaleString("es-EC", { dateStyle: "medium", timeStyle: "short" });
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  // Live updates: one EventSource per page. `hello` says whether the page must reload what it shows
  // (a fresh stream, or one that missed more than the server kept); other events are handoff events.
  // "resync" comes from the service when this app's listener fell behind: reload, whatever the conversation.
  const EVENT_KINDS = ["paused", "resumed", "user_message", "agent_message", "assigned", "bot_message", "resync",
    "contact_seen"];
  // One stream per page, whoever listens (the page itself, the pause notice): each `live` call adds a listener.
  const liveListeners = [];
  let liveSource = null;
  function live(onEvent, onResync) {
    if (!window.EventSource) return;
    liveListeners.push({ onEvent, onResync });
    if (liveSource) return;
    const status = document.getElementById("live-status");
    const source = liveSource = new EventSource("/console/events");
    source.addEventListener("hello", (event) => {
      if (status) { status.hidden = false; status.textContent = "En vivo"; status.classList.add("on"); }
      const hello = JSON.parse(event.data);
      if (hello.resync) for (const listener of liveListeners) listener.onResync();
    });
    for (const kind of EVENT_KINDS) {
      source.addEventListener(kind, (event) => {
        const data = JSON.parse(event.data);
        for (const listener of liveListeners) {
          if (data.kind === "resync") listener.onResync(); else listener.onEvent(data);
        }
      });
    }
    source.onerror = () => {
      if (status) { status.textContent = "Reconectando…"; status.classList.remove("on"); }
    };
  }

  // --- inbox -------------------------------------------------------------------------------------

  function inboxRow(c) {
    const link = el("a", { href: "/console/conversations/" + encodeURIComponent(c.id) }, c.contact_name || c.user_id);
    const assign = el("button", { type: "button", class: "assign-me", dataset: { conversationId: c.id } }, "Asignarme");
    return el("tr", { dataset: { conversationId: c.id } },
      el("td", {}, link),
      el("td", {}, c.waiting_es || "—"),
      el("td", {}, c.paused_reason_es || "—"),
      el("td", { class: "last-message" }, c.last_message_text || ""),
      el("td", {}, c.assigned_to || "Sin asignar"),
      el("td", {}, assign));
  }

  // Every conversation (`/console/inbox?estado=...`): the first page reloads from /api/console/inbox on any event.
  function inboxAllRow(c) {
    const name = el("td", {}, c.unread ? el("span", { class: "unread-dot", title: "Sin leer" }, "●") : null,
      c.unread ? " " : null, el("a", { href: c.url }, c.contact_name),
      c.unread_count ? el("span", { class: "badge unread-count",
        title: "Mensajes desde la última vez que alguien del equipo abrió la conversación" },
        " " + c.unread_count + " sin leer") : null);
    return el("tr", { dataset: { conversationId: c.id }, class: c.unread ? "unread" : null },
      name,
      el("td", {}, el("span", { class: "badge " + c.state }, c.state_es)),
      el("td", { class: "last-message", dataset: { at: c.last_user_message_at || "" } }, c.last_message_text || ""),
      el("td", {}, c.window_es),
      el("td", {}, c.tags.join(", ")),
      el("td", {}, c.assigned_to || "—"));
  }

  function initInboxAll() {
    const rows = document.getElementById("inbox-all-rows");
    const filters = JSON.parse(document.getElementById("inbox-data").textContent).filters;
    const params = new URLSearchParams({ state: filters.estado });
    if (filters.q) params.set("q", filters.q);
    if (filters.tag) params.set("tag", filters.tag);
    if (filters.campaign) params.set("campaign", filters.campaign);
    if (filters.ventana) params.set("window_open", "true");
    let fresh = new Set();
    const reload = debounce(async () => {
      if (filters.paged) return;  // an older page stays as it is; the first page follows the events
      try {
        const data = await api("GET", "/api/console/inbox?" + params.toString());
        rows.replaceChildren(...data.conversations.map((c) => {
          const row = inboxAllRow(c);
          if (fresh.has(c.id)) row.classList.add("fresh");
          return row;
        }));
        fresh = new Set();
        document.getElementById("inbox-all-empty").hidden = data.conversations.length > 0;
        document.getElementById("inbox-unread").textContent = data.unread;
        const unreadConversations = document.getElementById("inbox-unread-conversations");
        if (unreadConversations) {
          unreadConversations.dataset.count = data.unread_conversations;
          unreadConversations.textContent = data.unread_conversations +
            (data.unread_conversations === 1 ? " conversación" : " conversaciones") +
            " con mensajes sin leer (con estos filtros, en todas las páginas)";
        }
        document.getElementById("inbox-total").firstChild.textContent =
          data.total + (data.total === 1 ? " conversación" : " conversaciones") + "; sin leer en esta página: ";
      } catch (error) { toast(error.message, true); }
    }, 300);
    live((event) => { fresh.add(event.conversation_id); reload(); }, reload);
    setInterval(reload, 60000);  // windows and waiting times keep counting
  }

  function initInbox() {
    if (document.getElementById("inbox-all-rows")) { initInboxAll(); return; }
    const rows = document.getElementById("inbox-rows");
    const empty = document.getElementById("inbox-empty");
    const me = document.getElementById("current-user").dataset.username;

    function render(conversations, freshId) {
      rows.replaceChildren(...conversations.map((c) => {
        const row = inboxRow(c);
        if (c.id === freshId) row.classList.add("fresh");
        return row;
      }));
      empty.hidden = conversations.length > 0;
    }

    let freshId = null;
    const reload = debounce(async () => {
      try {
        const data = await api("GET", "/api/console/conversations");
        render(data.conversations, freshId);
      } catch (error) { toast(error.message, true); }
    }, 80);

    rows.addEventListener("click", async (event) => {
      const button = event.target.closest("button.assign-me");
      if (!button) return;
      try {
        await api("POST", "/api/console/conversations/" + encodeURIComponent(button.dataset.conversationId) + "/assign", { agent: me });
        toast("Conversación asignada a usted.");
        reload();
      } catch (error) { toast(error.message, true); }
    });

    document.getElementById("open-conversation").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      location.href = "/console/conversations/" + encodeURIComponent(form.get("page_id") + ":" + form.get("user_id").trim());
    });

    live((event) => {
      if (event.kind === "contact_seen") return;  // the paused list follows the handoff's own events
      freshId = event.conversation_id;
      // Show the customer's words at once; the reload brings the rest (waiting time, order, assignment).
      const row = rows.querySelector('tr[data-conversation-id="' + CSS.escape(event.conversation_id) + '"]');
      if (row && event.kind === "user_message" && event.data && typeof event.data.text === "string") {
        row.querySelector(".last-message").textContent = event.data.text;
        row.classList.remove("fresh"); void row.offsetWidth; row.classList.add("fresh");
      }
      reload();
    }, reload);
    setInterval(reload, 30000);  // waiting times keep counting
  }

  // --- conversation ------------------------------------------------------------------------------

  function initConversation() {
    const data = pageData();
    let conversation = data.conversation;
    let snippets = data.snippets || [];
    const id = conversation.id;
    const transcript = document.getElementById("transcript");
    const textArea = document.getElementById("reply-text");
    const sendButton = document.getElementById("reply-send");
    const replyError = document.getElementById("reply-error");
    const menu = document.getElementById("snippet-menu");
    const me = document.getElementById("current-user").dataset.username;
    let shown = conversation.transcript.map((item) => ({ author: item.author, text: item.text, at: item.at }));

    function kindOf(author) { return author.split(":")[0]; }
    function labelOf(author) {
      if (author === "user") return "Cliente";
      if (author === "bot") return "Bot";
      if (author.startsWith("agent:")) return author.slice(6) || "Agente";
      return author;
    }

    // A file sent (a thumbnail served by the app: the CSP admits images from 'self' only; a link otherwise) and the
    // quick replies offered, from the transcript's `data` (console/attachments.py).
    function extrasOf(itemData) {
      const nodes = [];
      const file = itemData && itemData.attachment;
      if (file && file.file_id && file.type === "image") {
        nodes.push(el("a", { class: "attachment", href: file.url, target: "_blank", rel: "noopener" },
          el("img", { class: "thumb", src: file.url, alt: file.filename || "imagen" })));
      } else if (file && file.file_id) {
        nodes.push(el("a", { class: "attachment file", href: file.url, download: true }, file.filename || "archivo"));
      } else if (file && file.url) {
        nodes.push(el("a", { class: "attachment file", href: file.url, target: "_blank", rel: "noopener noreferrer" }, file.url));
      }
      if (itemData && Array.isArray(itemData.quick_replies) && itemData.quick_replies.length) {
        nodes.push(el("span", { class: "quick-replies" }, ...itemData.quick_replies.map((title) => el("span", { class: "chip" }, title))));
      }
      return nodes;
    }

    function itemNode(item) {
      return el("li", { class: "msg " + kindOf(item.author), dataset: { author: item.author } },
        el("span", { class: "author" }, item.author_label || labelOf(item.author)),
        el("span", { class: "text" }, item.text),
        ...extrasOf(item.data),
        el("time", { datetime: item.at }, hhmm(item.at)));
    }

    function scrollDown() { transcript.scrollTop = transcript.scrollHeight; }

    function renderTranscript(items) {
      shown = items.map((item) => ({ author: item.author, text: item.text, at: item.at }));
      transcript.replaceChildren(...items.map(itemNode));
      scrollDown();
    }

    // The same message can arrive as an event and in a reload: show it once.
    function alreadyShown(item) {
      const at = Date.parse(item.at);
      return shown.slice(-8).some((other) => other.author === item.author && other.text === item.text &&
        Math.abs(Date.parse(other.at) - at) < 120000);
    }

    function append(item) {
      if (!item.text || alreadyShown(item)) return;
      shown.push({ author: item.author, text: item.text, at: item.at });
      transcript.append(itemNode(item));
      scrollDown();
    }

    function renderState(c) {
      conversation = c;
      const paused = c.state === "paused";
      const badge = document.getElementById("state-badge");
      badge.textContent = paused ? "Chatbot en pausa" : "Atiende el chatbot";
      badge.className = "badge " + c.state;
      document.getElementById("reply-form").hidden = !paused;
      document.getElementById("paused-actions").hidden = !paused;
      document.getElementById("bot-actions").hidden = paused;
      document.getElementById("assigned-to").textContent = c.assigned_to || "Sin asignar";
      document.getElementById("paused-reason").textContent = c.paused_reason_es || "—";
      document.getElementById("last-user-at").textContent = c.last_user_message_at ? dateTime(c.last_user_message_at) : "—";
      const select = document.getElementById("assign-agent");
      if (select) select.value = c.assigned_to || "";
      const windowBox = document.getElementById("window");
      const replyWindow = c.window || { can_reply: true, message_es: "" };
      windowBox.textContent = paused ? replyWindow.message_es : "El chatbot responde a este cliente.";
      windowBox.classList.toggle("closed", paused && !replyWindow.can_reply);
      textArea.disabled = !replyWindow.can_reply;
      sendButton.disabled = !replyWindow.can_reply;
      const attach = document.getElementById("attach-button");
      if (attach) attach.disabled = !replyWindow.can_reply;
    }

    const reload = debounce(async () => {
      try {
        const answer = await api("GET", "/api/console/conversations/" + encodeURIComponent(id));
        renderState(answer.conversation);
        renderTranscript(answer.conversation.transcript);
      } catch (error) { toast(error.message, true); }
    }, 80);

    renderState(conversation);
    scrollDown();
    setInterval(() => refreshState(), 60000);  // the time left in the window keeps counting
    // Rasa saves the conversation when the pausing action is done, a moment after the pause is announced: a page
    // opened right then reads the transcript once more.
    if (conversation.paused_at && Date.now() - Date.parse(conversation.paused_at) < 10000) setTimeout(reload, 2000);

    const refreshState = debounce(async () => {
      try {
        const answer = await api("GET", "/api/console/conversations/" + encodeURIComponent(id));
        renderState(answer.conversation);
      } catch (error) { toast(error.message, true); }
    }, 300);

    // Snippets: "/" at the start of a word opens the menu; Enter or Tab inserts, Escape closes.
    let matches = [];
    let selected = 0;
    function snippetQuery() {
      const before = textArea.value.slice(0, textArea.selectionStart);
      const match = before.match(/(^|\s)\/([a-z0-9_-]*)$/i);
      return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
    }
    function closeMenu() { menu.hidden = true; matches = []; }
    function showMenu() {
      const found = snippetQuery();
      if (!found) { closeMenu(); return; }
      matches = snippets.filter((s) => s.name.startsWith(found.query)).slice(0, 8);
      if (!matches.length) { closeMenu(); return; }
      selected = Math.min(selected, matches.length - 1);
      menu.replaceChildren(...matches.map((s, index) => {
        const option = el("li", { role: "option", "aria-selected": index === selected ? "true" : "false", dataset: { name: s.name } },
          "/" + s.name, el("small", {}, s.text));
        option.addEventListener("mousedown", (event) => { event.preventDefault(); insertSnippet(s); });
        return option;
      }));
      menu.hidden = false;
    }
    function insertSnippet(snippet) {
      const found = snippetQuery();
      if (!found) return;
      const caret = textArea.selectionStart;
      textArea.value = textArea.value.slice(0, found.start) + snippet.text + textArea.value.slice(caret);
      const position = found.start + snippet.text.length;
      textArea.setSelectionRange(position, position);
      closeMenu();
      textArea.focus();
    }
    textArea.addEventListener("input", () => { selected = 0; showMenu(); });
    textArea.addEventListener("keydown", (event) => {
      if (!menu.hidden && matches.length) {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          selected = (selected + (event.key === "ArrowDown" ? 1 : matches.length - 1)) % matches.length;
          showMenu();
          return;
        }
        if (event.key === "Enter" || event.key === "Tab") { event.preventDefault(); insertSnippet(matches[selected]); return; }
        if (event.key === "Escape") { closeMenu(); return; }
      }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        document.getElementById("reply-form").requestSubmit();
      }
    });
    textArea.addEventListener("blur", () => setTimeout(closeMenu, 150));

    let replyKeyText = null;  // the words last sent under the current key (null: the key is unused)
    let warnedText = null;  // words whose variable warning the agent has seen: sending them again sends them as they are
    document.getElementById("reply-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = textArea.value.trim();
      if (!text) return;
      sendButton.disabled = true;
      replyError.hidden = true;
      try {
        // Variables ({nombre}, {campo.ciudad}…): an unknown or empty one is shown before the words go out.
        if (text.includes("{") && warnedText !== text) {
          const preview = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/reply/preview", { text });
          if (preview.warning_es) {
            warnedText = text;
            replyError.textContent = preview.warning_es + " Se enviaría: «" + preview.text + "». Pulse Enviar otra vez para enviarlo así.";
            replyError.hidden = false;
            return;
          }
        }
        // One key per reply: a retried POST (a lost answer, a double click) is the same message, not a second one.
        // The key stays after a failure, so sending again is deduplicated if the first POST did reach the server;
        // edited words are another message and get a new key (the server refuses a used key with other words).
        const replyKey = document.getElementById("reply-key");
        const quickField = document.getElementById("reply-quick-replies");
        const quickTitles = quickField ? quickField.value.split(",").map((t) => t.trim()).filter(Boolean) : [];
        const signature = text + "\u0000" + quickTitles.join("\u0000");  // other choices are another message too
        if (replyKeyText !== null && replyKeyText !== signature) replyKey.value = newReplyKey();
        replyKeyText = signature;
        const body = { text, idempotency_key: replyKey.value };
        if (quickTitles.length) body.quick_replies = quickTitles.map((title) => ({ title }));
        if (textArea.dataset.entryId) body.entry_id = textArea.dataset.entryId;  // «Responder con una entrada» (unanswered.js)
        const answer = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/reply", body);
        replyKey.value = newReplyKey();
        replyKeyText = null;
        textArea.value = "";
        delete textArea.dataset.entryId;
        if (quickField) quickField.value = "";
        append({ author: "agent:" + me, text: answer.text, at: new Date().toISOString(),
                 data: quickTitles.length ? { quick_replies: quickTitles } : null });
      } catch (error) {
        replyError.textContent = error.message;
        replyError.hidden = false;
      } finally {
        sendButton.disabled = !(conversation.window || { can_reply: true }).can_reply;
        textArea.focus();
      }
    });

    // "Adjuntar archivo": the file goes up (the server reads its type from its bytes), the typed text as its caption.
    const attachButton = document.getElementById("attach-button");
    const attachInput = document.getElementById("attach-file");
    if (attachButton && attachInput) {
      attachButton.addEventListener("click", () => attachInput.click());
      attachInput.addEventListener("change", async () => {
        const file = attachInput.files && attachInput.files[0];
        if (!file) return;
        replyError.hidden = true;
        attachButton.disabled = true;
        try {
          if (file.size > 10 * 1024 * 1024) throw new Error("El archivo supera 10 MB.");
          const form = new FormData();
          form.append("file", file, file.name);
          form.append("caption", textArea.value.trim());
          form.append("idempotency_key", newReplyKey());
          const answer = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/attachment", form);
          textArea.value = "";
          append({ author: "agent:" + me, text: answer.text, at: new Date().toISOString(), data: { attachment: answer.attachment } });
          toast("Archivo enviado.");
        } catch (error) {
          replyError.textContent = error.message;
          replyError.hidden = false;
        } finally {
          attachInput.value = "";
          attachButton.disabled = !(conversation.window || { can_reply: true }).can_reply;
        }
      });
    }

    async function assignTo(agent) {
      try {
        const answer = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/assign", { agent: agent || null });
        renderState(answer.conversation);
        toast(agent ? "Conversación asignada a " + agent + "." : "Conversación sin asignar.");
      } catch (error) { toast(error.message, true); }
    }
    document.getElementById("assign-form").addEventListener("submit", (event) => {
      event.preventDefault();
      assignTo(document.getElementById("assign-agent").value);
    });
    document.getElementById("assign-me").addEventListener("click", () => assignTo(me));

    document.getElementById("close-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const note = document.getElementById("close-note").value.trim();
      if (!note) return;
      try {
        const answer = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/close", { note });
        renderState(answer.conversation);
        document.getElementById("close-note").value = "";
        toast("Conversación cerrada: el chatbot vuelve a responder.");
      } catch (error) { toast(error.message, true); }
    });

    document.getElementById("pause-bot").addEventListener("click", async () => {
      try {
        const answer = await api("POST", "/api/console/conversations/" + encodeURIComponent(id) + "/pause");
        renderState(answer.conversation);
        toast("Chatbot en pausa: ahora responde usted.");
        reload();
      } catch (error) { toast(error.message, true); }
    });

    live((event) => {
      if (event.conversation_id !== id) return;
      const text = event.data && typeof event.data.text === "string" ? event.data.text : null;
      if (event.kind === "user_message" && text !== null) {
        append({ author: "user", text, at: event.at });
      } else if (event.kind === "agent_message" && text !== null) {
        append({ author: (event.data && event.data.author) || ("agent:" + ((event.data && event.data.agent) || "")), text, at: event.at,
                 data: event.data && event.data.shown });
      } else if (event.kind === "bot_message" && text !== null) {
        append({ author: "bot", text, at: event.at });
      } else {
        reload();
        return;
      }
      // The window and the last message time move with every message: refresh the state, keep the transcript.
      refreshState();
    }, reload);

  }

  // --- snippets page -----------------------------------------------------------------------------

  function initSnippets() {
    const rows = document.getElementById("snippet-rows");
    function render(list) {
      rows.replaceChildren(...list.map((s) => el("tr", { dataset: { name: s.name } },
        el("td", {}, el("code", {}, "/" + s.name)), el("td", { class: "snippet-text" }, s.text), el("td", {}, s.created_by),
        el("td", {}, el("button", { type: "button", class: "delete-snippet danger link", dataset: { name: s.name } }, "Borrar")))));
      document.getElementById("snippets-empty").hidden = list.length > 0;
    }
    async function reload() { render((await api("GET", "/api/console/snippets")).snippets); }
    // The preview: the text with its variables filled for a sample contact, and what is wrong with them.
    const previewBox = document.getElementById("snippet-preview");
    const warningBox = document.getElementById("snippet-warning");
    const preview = debounce(async () => {
      const text = document.getElementById("snippet-text").value;
      if (!text.trim()) { previewBox.textContent = ""; warningBox.hidden = true; return; }
      try {
        const answer = await api("POST", "/api/console/snippets/preview", { text });
        previewBox.textContent = answer.text;
        previewBox.classList.remove("muted");
        warningBox.textContent = answer.warning_es || "";
        warningBox.hidden = !answer.warning_es;
      } catch (error) { warningBox.textContent = error.message; warningBox.hidden = false; }
    }, 250);
    document.getElementById("snippet-text").addEventListener("input", preview);
    document.getElementById("snippet-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = document.getElementById("snippet-name").value.trim().replace(/^\//, "").toLowerCase();
      const text = document.getElementById("snippet-text").value;
      try {
        await api("PUT", "/api/console/snippets/" + encodeURIComponent(name), { text });
        event.target.reset();
        toast("Atajo /" + name + " guardado.");
        await reload();
      } catch (error) { toast(error.message, true); }
    });
    rows.addEventListener("click", async (event) => {
      const button = event.target.closest("button.delete-snippet");
      if (!button) return;
      try {
        await api("DELETE", "/api/console/snippets/" + encodeURIComponent(button.dataset.name));
        await reload();
      } catch (error) { toast(error.message, true); }
    });
  }

  // --- knowledge page ----------------------------------------------------------------------------

  // A draft's validation report in its card (templates/console/validation_report.html): the summary, a row per issue,
  // and «Publicar» enabled only for a draft without errors. Also a group's page of «Preguntas sin respuesta».
  function showReport(d, summaryText) {
    document.getElementById("report-card").hidden = false;
    const summary = document.getElementById("report-summary");
    summary.textContent = summaryText;
    summary.className = "alert " + (d.ok ? "ok" : "error");
    document.getElementById("report-rows").replaceChildren(...d.issues.map((issue) => el("tr", { class: issue.severity, dataset: { row: issue.row === null ? "" : issue.row } },
      el("td", {}, issue.row === null ? "—" : "Fila " + issue.row),
      el("td", {}, issue.column_label || issue.column || "—"),
      el("td", {}, issue.severity === "error" ? "Error" : "Advertencia"),
      el("td", {}, issue.message))));
    document.getElementById("publish-button").disabled = !d.ok;
  }

  // An upload made before the live version changed is refused (stale_draft, can_confirm): publishing it would drop
  // what was published since. The editor is asked, in the refusal's words, and only a yes publishes it anyway.
  async function publishConfirmingStale(draftId) {
    try {
      return await api("POST", "/api/console/knowledge/publish", { draft_id: draftId });
    } catch (error) {
      const refusal = error.body && error.body.error;
      if (!(refusal && refusal.reason_code === "stale_draft" && refusal.can_confirm)) throw error;
      if (!confirm(refusal.message + "\n\n¿Publicar este archivo de todos modos?")) {
        throw new Error("No se publicó. Descargue la matriz publicada, haga sus cambios sobre ella y súbala de nuevo.");
      }
      return await api("POST", "/api/console/knowledge/publish", { draft_id: draftId, confirm_stale: true });
    }
  }

  // «Publicar este borrador»: publishes the draft, then `then(answer)`; a failure of either is said and the button is
  // offered again.
  async function publishDraft(draftId, then) {
    const button = document.getElementById("publish-button");
    button.disabled = true;
    button.textContent = "Publicando…";
    try {
      await then(await publishConfirmingStale(draftId));
      button.textContent = "Publicada";
    } catch (error) {
      toast(error.message, true);
      button.disabled = false;
      button.textContent = "Publicar este borrador";
    }
  }

  function initKnowledge() {
    let draft = null;
    const publishButton = document.getElementById("publish-button");

    function answerText(answer, none) {
      if (!answer) return none;
      return outcomeText(answer) + equivalentsText(answer.equivalents || []);
    }

    function outcomeText(answer) {
      if (answer.outcome === "answer") return answer.text + (answer.entry_id ? "\n\n(entrada «" + answer.entry_id + "»)" : "");
      if (answer.outcome === "suggest") return "No responde directamente; sugiere: " + answer.suggestions.join(", ");
      return answer.text || "No encuentra respuesta: el bot ofrecería hablar con una persona.";
    }

    // The customer's words the bot read as the matrix's own (equivalent words): an editor who disagrees writes the
    // customer's word in the entry's «palabras clave», and the bot keeps it as it is.
    function equivalentsText(equivalents) {
      if (!equivalents.length) return "";
      return "\n\nLeyó " + equivalents.map((e) => "«" + e.said + "» como «" + e.read_as + "»").join(", ") +
        ". Si no significan lo mismo en su negocio, escriba «" + equivalents[0].said +
        "» en las palabras clave de la entrada que le corresponde: el bot lo leerá tal como lo escribe el cliente.";
    }

    function renderReport(d) {
      draft = d;
      showReport(d, d.ok
        ? "«" + d.filename + "» es válida: " + d.entry_count + " entradas listas para publicar" + (d.warning_count ? " (" + d.warning_count + " advertencias)." : ".")
        : "«" + d.filename + "» tiene " + d.error_count + " error(es): corríjalos y vuelva a subir el archivo. La versión publicada sigue respondiendo.");
    }

    function renderStatus(status) {
      const live = document.getElementById("live-version");
      live.textContent = status.live ? status.live.id + " · " + status.live.entry_count + " entradas · " + status.live.published_by : "ninguna todavía";
      document.getElementById("versions").replaceChildren(...status.versions.map((v) => el("li", { dataset: { versionId: v.id } },
        v.id + " · " + v.entry_count + " entradas · " + v.published_by + " · " + v.published_at.slice(0, 16).replace("T", " "),
        v.live ? el("strong", {}, " (publicada)") : null)));
      document.getElementById("rollback-button").disabled = status.versions.length < 2;
    }

    document.getElementById("upload-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = document.getElementById("matrix-file").files[0];
      if (!file) return;
      const form = new FormData();
      form.append("file", file, file.name);
      const button = document.getElementById("upload-button");
      button.disabled = true;
      button.textContent = "Revisando…";
      try {
        renderReport((await api("POST", "/api/console/knowledge/drafts", form)).draft);
      } catch (error) { toast(error.message, true); }
      finally { button.disabled = false; button.textContent = "Subir y revisar"; }
    });

    publishButton.addEventListener("click", async () => {
      if (!draft) return;
      await publishDraft(draft.id, async (answer) => {
        toast("Matriz publicada: versión " + answer.version.id + ".");
        renderStatus(await api("GET", "/api/console/knowledge"));
      });
    });

    document.getElementById("rollback-button").addEventListener("click", async () => {
      try {
        const answer = await api("POST", "/api/console/knowledge/rollback", {});
        toast("El chatbot vuelve a responder con la versión " + answer.version.id + ".");
        renderStatus(await api("GET", "/api/console/knowledge"));
      } catch (error) { toast(error.message, true); }
    });

    document.getElementById("try-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const question = document.getElementById("try-question").value.trim();
      if (!question) return;
      const draftBox = document.getElementById("try-draft");
      const liveBox = document.getElementById("try-live");
      draftBox.textContent = liveBox.textContent = "Buscando…";
      try {
        const answer = await api("POST", "/api/console/knowledge/try", { question, draft_id: draft ? draft.id : null });
        draftBox.textContent = answerText(answer.draft, "Suba un borrador para probarlo.");
        liveBox.textContent = answerText(answer.live, "Todavía no hay una versión publicada.");
        draftBox.classList.remove("muted"); liveBox.classList.remove("muted");
      } catch (error) { draftBox.textContent = liveBox.textContent = ""; toast(error.message, true); }
    });
  }

  // --- m.me links page ---------------------------------------------------------------------------

  function initLinks() {
    const kind = document.getElementById("link-start-kind");
    const valueLabel = document.getElementById("link-start-label");
    const valueInput = document.getElementById("link-start-value");
    kind.addEventListener("change", () => {
      valueLabel.hidden = !kind.value;
      valueInput.required = Boolean(kind.value);
      document.getElementById("link-start-caption").textContent = kind.value === "intent"
        ? "Intención del chatbot (por ejemplo greet)" : "Id de la entrada (columna «id» de la matriz)";
    });
    document.getElementById("link-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: document.getElementById("link-name").value };
      const ref = document.getElementById("link-ref").value.trim();
      if (ref) body.ref = ref;
      const page = document.getElementById("link-page");
      if (page) body.page_id = page.value;
      if (kind.value) body.start = { [kind.value]: valueInput.value.trim() };
      try {
        const answer = await api("POST", "/api/console/links", body);
        if (answer.warning) {  // created, but its matrix entry could not be checked: say so before the reload
          toast("Enlace creado. " + answer.warning, true);
          setTimeout(() => location.reload(), 6000);
          return;
        }
        toast("Enlace creado: " + answer.link.url);
        location.reload();
      } catch (error) { toast(error.message, true); }
    });
    document.getElementById("link-rows").addEventListener("click", async (event) => {
      const button = event.target.closest("button.switch-link");
      if (!button) return;
      const enabled = button.dataset.enabled !== "true";
      try {
        await api("PATCH", "/api/console/links/" + encodeURIComponent(button.dataset.linkId), { enabled });
        location.reload();
      } catch (error) { toast(error.message, true); }
    });
    for (const form of document.querySelectorAll("form.username-form")) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          await api("PUT", "/api/console/links/usernames/" + encodeURIComponent(form.dataset.pageId),
                    { username: form.elements.username.value.trim() });
          location.reload();
        } catch (error) { toast(error.message, true); }
      });
    }
  }

  // --- comment reply rules page ("Respuestas privadas") -------------------------------------------

  function initComments() {
    const data = pageData();
    const form = document.getElementById("rule-form");
    if (!form) return;  // no page configured
    const pageId = data.page_id;
    const rules = data.rules || [];
    const $ = (id) => document.getElementById(id);
    const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);
    const commaList = (text) => text.split(",").map((part) => part.trim()).filter(Boolean);
    const titled = (line) => {
      const at = line.indexOf("|");
      return at < 0 ? [line, ""] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
    };

    function showModes() {
      $("rule-post-ids-label").hidden = $("rule-posts-mode").value !== "ids";
      $("rule-post-words-label").hidden = $("rule-posts-mode").value !== "text";
      $("rule-keywords-label").hidden = $("rule-comments-mode").value !== "keywords";
      $("rule-fixed").hidden = $("rule-reply-mode").value !== "fixed";
    }
    for (const id of ["rule-posts-mode", "rule-comments-mode", "rule-reply-mode"]) $(id).addEventListener("change", showModes);
    showModes();

    function button(line) {
      const [title, target] = titled(line);
      if (/^https?:\/\//i.test(target)) return { type: "web_url", title, url: target };
      if (/^\+[0-9 ]+$/.test(target)) return { type: "phone_number", title, payload: target };
      return { type: "postback", title, payload: target || title };
    }

    function message() {
      const text = $("rule-text").value.trim();
      const quickReplies = lines($("rule-quick-replies").value).map((line) => {
        const [title, payload] = titled(line);
        return { content_type: "text", title, payload: payload || title };
      });
      const buttons = lines($("rule-buttons").value).map(button);
      const built = buttons.length
        ? { attachment: { type: "template", payload: { template_type: "button", text, buttons } } }
        : { text };
      if (quickReplies.length) built.quick_replies = quickReplies;
      return built;
    }

    function body() {
      const postsMode = $("rule-posts-mode").value;
      const commentsMode = $("rule-comments-mode").value;
      const replyMode = $("rule-reply-mode").value;
      return {
        name: $("rule-name").value.trim(),
        enabled: $("rule-enabled").checked,
        posts: postsMode === "ids" ? { mode: "ids", post_ids: lines($("rule-post-ids").value) }
          : postsMode === "text" ? { mode: "text", post_words: commaList($("rule-post-words").value) } : { mode: "all" },
        comments: commentsMode === "keywords" ? { mode: "keywords", keywords: commaList($("rule-keywords").value) } : { mode: "any" },
        reply: replyMode === "knowledge" ? { mode: "knowledge" } : { mode: "fixed", message: message() },
        public_replies: lines($("rule-public-replies").value),
      };
    }

    function fill(rule) {
      $("rule-id").value = rule ? rule.id : "";
      $("rule-form-title").textContent = rule ? "Editar la regla «" + rule.name + "»" : "Nueva regla";
      $("rule-cancel").hidden = !rule;
      $("rule-name").value = rule ? rule.name : "";
      $("rule-enabled").checked = rule ? rule.enabled : true;
      $("rule-posts-mode").value = rule ? rule.posts.mode : "all";
      $("rule-post-ids").value = rule ? rule.posts.post_ids.join("\n") : "";
      $("rule-post-words").value = rule ? rule.posts.post_words.join(", ") : "";
      $("rule-comments-mode").value = rule ? rule.comments.mode : "keywords";
      $("rule-keywords").value = rule ? rule.comments.keywords.join(", ") : "";
      $("rule-reply-mode").value = rule ? rule.reply.mode : "fixed";
      const m = (rule && rule.reply.message) || {};
      const template = m.attachment ? m.attachment.payload : null;
      $("rule-text").value = template ? template.text : (m.text || "");
      $("rule-quick-replies").value = (m.quick_replies || []).map((q) => q.title + " | " + q.payload).join("\n");
      $("rule-buttons").value = template ? template.buttons.map((b) => b.title + " | " + (b.url || b.payload)).join("\n") : "";
      $("rule-public-replies").value = rule ? rule.public_replies.join("\n") : "";
      showModes();
      if (rule) form.scrollIntoView({ behavior: "smooth" });
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = $("rule-id").value;
      try {
        if (id) await api("PUT", "/api/console/comments/rules/" + encodeURIComponent(id), body());
        else await api("POST", "/api/console/comments/pages/" + encodeURIComponent(pageId) + "/rules", body());
        toast("Regla guardada.");
        location.reload();
      } catch (error) { toast(error.message, true); }
    });
    $("rule-cancel").addEventListener("click", () => fill(null));

    $("rule-rows").addEventListener("click", async (event) => {
      const target = event.target.closest("button");
      if (!target) return;
      const id = Number(target.dataset.ruleId);
      const rule = rules.find((r) => r.id === id);
      try {
        if (target.classList.contains("edit-rule")) { fill(rule); return; }
        if (target.classList.contains("switch-rule")) {
          await api("PUT", "/api/console/comments/rules/" + id + "/enabled", { enabled: target.dataset.enabled !== "true" });
        } else if (target.classList.contains("delete-rule")) {
          if (!confirm("¿Borrar la regla «" + (rule ? rule.name : id) + "»?")) return;
          await api("DELETE", "/api/console/comments/rules/" + id);
        } else if (target.classList.contains("move-rule")) {
          const order = rules.map((r) => r.id);
          const from = order.indexOf(id);
          const to = from + Number(target.dataset.step);
          if (from < 0 || to < 0 || to >= order.length) return;
          [order[from], order[to]] = [order[to], order[from]];
          await api("PUT", "/api/console/comments/pages/" + encodeURIComponent(pageId) + "/order", { rule_ids: order });
        } else {
          return;
        }
        location.reload();
      } catch (error) { toast(error.message, true); }
    });

    $("settings-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const score = $("settings-score").value.trim();
      try {
        await api("PUT", "/api/console/comments/pages/" + encodeURIComponent(pageId) + "/settings", {
          one_reply_per_person_per_post_per_day: $("settings-once").checked,
          knowledge_min_score: score === "" ? null : Number(score),
        });
        toast("Configuración guardada.");
      } catch (error) { toast(error.message, true); }
    });

    async function refreshRecent() {
      try {
        const answer = await api("GET", "/api/console/comments/pages/" + encodeURIComponent(pageId) + "/recent");
        $("recent-rows").replaceChildren(...answer.comments.map((c) => el("tr", { dataset: { commentId: c.comment_id || "", status: c.status } },
          el("td", { class: "nowrap" }, el("time", { datetime: c.created_at }, dateTime(c.created_at))),
          el("td", {}, c.from_name || c.from_id),
          el("td", { class: "comment-text" }, c.message),
          el("td", { class: "comment-status" }, c.status_es),
          el("td", {}, c.reason_es || ""),
          el("td", {}, c.rule_name || ""))));
        $("recent-empty").hidden = answer.comments.length > 0;
      } catch (error) { toast(error.message, true); }
    }
    // A comment still pending is decided within seconds: look again soon while one is shown, else now and then.
    let timer = null;
    function schedule() {
      clearTimeout(timer);
      const pending = document.querySelector('#recent-rows tr[data-status="pending"]');
      timer = setTimeout(async () => { await refreshRecent(); schedule(); }, pending ? 2000 : 15000);
    }
    $("recent-refresh").addEventListener("click", async () => { await refreshRecent(); schedule(); });
    schedule();
  }

  // --- Messenger profile page (Get Started, greeting, ice breakers, persistent menu) ---------------

  function initPageProfile() {
    const $ = (id) => document.getElementById(id);
    const data = pageData();
    const picker = $("profile-page");
    if (picker) picker.addEventListener("change", () => {
      location.href = "/console/page-profile?page_id=" + encodeURIComponent(picker.value);
    });
    if (!data.page_id) return;
    const limits = data.limits;
    // Groups for other locales (set over the API): kept as they are, after the default one.
    let otherIceBreakers = [];
    let otherMenus = [];

    function counted(field, most) {
      const counter = el("small", { class: "muted counter" });
      const update = () => { counter.textContent = field.value.length + "/" + most; };
      field.addEventListener("input", update);
      update();
      return counter;
    }
    function removeButton() { return el("button", { type: "button", class: "link danger remove-row" }, "Quitar"); }

    function greetingRow(locale, text) {
      const isDefault = locale === "default";
      const localeInput = el("input", { class: "greeting-locale", size: 8, placeholder: "es_ES", readonly: isDefault });
      const textArea = el("textarea", { class: "greeting-text", rows: 2, maxlength: limits.greeting_text });
      localeInput.value = locale;
      textArea.value = text;
      return el("div", { class: "row greeting-row" },
        el("label", {}, "Idioma", localeInput),
        el("label", { class: "grow" }, isDefault ? "Saludo (predeterminado)" : "Saludo", textArea, counted(textArea, limits.greeting_text)),
        isDefault ? null : removeButton());
    }
    function iceBreakerRow(question, payload) {
      const q = el("input", { class: "ice-question", maxlength: limits.ice_breaker_question, placeholder: "¿Cuál es el horario?" });
      const p = el("input", { class: "ice-payload", maxlength: limits.payload, placeholder: "/ask_knowledge{\"entry_id\":\"horario\"}" });
      q.value = question; p.value = payload;
      return el("tr", { class: "ice-row" }, el("td", {}, q, counted(q, limits.ice_breaker_question)), el("td", {}, p), el("td", {}, removeButton()));
    }
    function menuRow(item) {
      const kind = el("select", { class: "menu-type" }, el("option", { value: "postback" }, "Respuesta del chatbot"), el("option", { value: "web_url" }, "Enlace"));
      const title = el("input", { class: "menu-title", maxlength: limits.menu_item_title, placeholder: "Ver el menú" });
      const value = el("input", { class: "menu-value", maxlength: limits.payload });
      kind.value = item.type === "web_url" ? "web_url" : "postback";
      title.value = item.title || "";
      value.value = (kind.value === "web_url" ? item.url : item.payload) || "";
      const hint = () => { value.placeholder = kind.value === "web_url" ? "https://…" : "/greet"; };
      kind.addEventListener("change", hint);
      hint();
      return el("tr", { class: "menu-row" }, el("td", {}, kind), el("td", {}, title), el("td", {}, value), el("td", {}, removeButton()));
    }

    function updateButtons() {
      $("add-ice-breaker").disabled = $("ice-breaker-rows").children.length >= limits.ice_breakers;
      $("add-menu-item").disabled = $("menu-rows").children.length >= limits.menu_items;
    }

    function load(profile) {
      const getStarted = profile.get_started;
      $("get-started-enabled").checked = Boolean(getStarted);
      $("get-started-payload").value = getStarted ? getStarted.payload : data.default_get_started_payload;
      const greetings = profile.greeting || [];
      const byDefault = greetings.find((g) => g.locale === "default");
      $("greeting-rows").replaceChildren(greetingRow("default", byDefault ? byDefault.text : ""),
        ...greetings.filter((g) => g.locale !== "default").map((g) => greetingRow(g.locale, g.text)));
      const groups = profile.ice_breakers || [];
      const iceDefault = groups.find((g) => g.locale === "default");
      otherIceBreakers = groups.filter((g) => g.locale !== "default");
      $("ice-breaker-rows").replaceChildren(...(iceDefault ? iceDefault.call_to_actions : []).map((q) => iceBreakerRow(q.question, q.payload)));
      const menus = profile.persistent_menu || [];
      const menuDefault = menus.find((m) => m.locale === "default");
      otherMenus = menus.filter((m) => m.locale !== "default");
      $("composer-disabled").checked = Boolean(menuDefault && menuDefault.composer_input_disabled);
      $("menu-rows").replaceChildren(...(menuDefault ? menuDefault.call_to_actions || [] : []).map(menuRow));
      updateButtons();
    }

    // The profile in Meta's shape; each field gets the path Meta (and the server) would name it by.
    function collect() {
      const profile = {};
      if ($("get-started-enabled").checked) profile.get_started = { payload: $("get-started-payload").value.trim() };
      const greetingRows = [...$("greeting-rows").querySelectorAll(".greeting-row")];
      const greetings = greetingRows.map((row, i) => {
        row.querySelector(".greeting-locale").dataset.path = `greeting[${i}][locale]`;
        row.querySelector(".greeting-text").dataset.path = `greeting[${i}][text]`;
        return { locale: row.querySelector(".greeting-locale").value.trim(), text: row.querySelector(".greeting-text").value.trim() };
      });
      if (greetings.some((g) => g.text)) profile.greeting = greetings;
      const questions = [...$("ice-breaker-rows").children].map((row, j) => {
        row.querySelector(".ice-question").dataset.path = `ice_breakers[0][call_to_actions][${j}][question]`;
        row.querySelector(".ice-payload").dataset.path = `ice_breakers[0][call_to_actions][${j}][payload]`;
        return { question: row.querySelector(".ice-question").value.trim(), payload: row.querySelector(".ice-payload").value.trim() };
      });
      $("ice-breaker-rows").dataset.path = "ice_breakers[0][call_to_actions]";
      if (questions.length) profile.ice_breakers = [{ call_to_actions: questions, locale: "default" }, ...otherIceBreakers];
      else if (otherIceBreakers.length) profile.ice_breakers = otherIceBreakers;
      const items = [...$("menu-rows").children].map((row, j) => {
        const type = row.querySelector(".menu-type").value;
        const base = `persistent_menu[0][call_to_actions][${j}]`;
        row.querySelector(".menu-title").dataset.path = base + "[title]";
        row.querySelector(".menu-value").dataset.path = base + (type === "web_url" ? "[url]" : "[payload]");
        const item = { type, title: row.querySelector(".menu-title").value.trim() };
        item[type === "web_url" ? "url" : "payload"] = row.querySelector(".menu-value").value.trim();
        return item;
      });
      $("menu-rows").dataset.path = "persistent_menu[0][call_to_actions]";
      const disabled = $("composer-disabled").checked;
      if (items.length || disabled) {
        const menu = { locale: "default", composer_input_disabled: disabled };
        if (items.length) menu.call_to_actions = items;
        profile.persistent_menu = [menu, ...otherMenus];
      } else if (otherMenus.length) profile.persistent_menu = otherMenus;
      return profile;
    }

    function renderStatus(view) {
      const box = $("profile-status");
      const s = view.status;
      box.hidden = false;
      if (!s) {
        box.className = "alert";
        box.textContent = "Perfil sugerido: todavía no se ha guardado uno para esta página.";
      } else if (s.last_ok === false) {
        const error = (s.last_answer && s.last_answer.error) || {};
        box.className = "alert error";
        box.textContent = "No se aplicó en Facebook (" + dateTime(s.last_attempt_at) + ", " + s.last_attempt_by + "). Facebook dijo: " + (error.message || "sin respuesta");
      } else if (s.applied_at && !s.has_unapplied_changes) {
        box.className = "alert ok";
        box.textContent = "Aplicado en Facebook el " + dateTime(s.applied_at) + " por " + s.applied_by + ".";
      } else {
        box.className = "alert";
        box.textContent = "Hay cambios guardados sin aplicar en Facebook" + (s.applied_at ? " (última aplicación: " + dateTime(s.applied_at) + ")." : ".");
      }
    }

    function clearError() {
      $("profile-error").hidden = true;
      for (const node of document.querySelectorAll(".invalid")) node.classList.remove("invalid");
    }
    function showError(error) {
      const box = $("profile-error");
      box.textContent = error.message;
      box.hidden = false;
      let path = error.body && error.body.error && error.body.error.field;
      while (path) {
        const target = document.querySelector(`[data-path="${CSS.escape(path)}"]`);
        if (target) { target.classList.add("invalid"); if (target.focus) target.focus(); break; }
        const cut = path.lastIndexOf("[");
        path = cut > 0 ? path.slice(0, cut) : "";
      }
    }

    async function save() {
      clearError();
      const view = await api("PUT", "/api/console/page-profile", { page_id: data.page_id, profile: collect() });
      renderStatus(view);
      return view;
    }

    $("profile-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await save(); toast("Perfil guardado. Pulse «Aplicar en Facebook» para publicarlo."); } catch (error) { showError(error); }
    });
    $("apply-profile").addEventListener("click", async () => {
      const button = $("apply-profile");
      button.disabled = true;
      try {
        await save();
        renderStatus(await api("POST", "/api/console/page-profile/apply", { page_id: data.page_id }));
        toast("Perfil aplicado en Facebook.");
      } catch (error) {
        showError(error);
        try { renderStatus(await api("GET", "/api/console/page-profile?page_id=" + encodeURIComponent(data.page_id))); } catch (_) { /* the error shown is enough */ }
      } finally { button.disabled = false; }
    });
    $("show-live").addEventListener("click", async () => {
      const box = $("live-profile");
      try {
        const answer = await api("GET", "/api/console/page-profile/live?page_id=" + encodeURIComponent(data.page_id));
        box.textContent = Object.keys(answer.live).length ? JSON.stringify(answer.live, null, 2) : "Facebook no tiene perfil para esta página.";
        box.hidden = false;
      } catch (error) { toast(error.message, true); }
    });
    $("add-greeting").addEventListener("click", () => { $("greeting-rows").append(greetingRow("", "")); });
    $("add-ice-breaker").addEventListener("click", () => { $("ice-breaker-rows").append(iceBreakerRow("", "")); updateButtons(); });
    $("add-menu-item").addEventListener("click", () => { $("menu-rows").append(menuRow({ type: "postback" })); updateButtons(); });
    $("profile-form").addEventListener("click", (event) => {
      const button = event.target.closest("button.remove-row");
      if (!button) return;
      button.closest(".greeting-row, tr").remove();
      updateButtons();
    });
    $("profile-form").addEventListener("input", (event) => { event.target.classList.remove("invalid"); });

    load(data.profile);
    renderStatus(data);
  }

  // --- contacts ("Contactos"): the list (export and import for admins) and one contact -------------------

  function initContacts() {
    const form = document.getElementById("contacts-import");
    if (!form) return;  // agents: no export or import
    const result = document.getElementById("contacts-import-result");
    const summary = document.getElementById("contacts-import-summary");
    const errors = document.getElementById("contacts-import-errors");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("contacts-import-file");
      if (!input.files.length) return;
      const body = new FormData();
      body.append("file", input.files[0]);
      const partial = document.getElementById("contacts-import-partial").checked;
      let answer = null;
      try {
        answer = await api("POST", "/api/console/contacts/import" + (partial ? "?partial=1" : ""), body);
      } catch (error) {
        answer = error.body && error.body.error && error.body.error.errors ? error.body.error : null;
        if (!answer) { toast(error.message, true); return; }
      }
      const rows = answer.errors || [];
      const created = answer.created || 0, updated = answer.updated || 0;
      summary.className = "alert " + (rows.length ? "error" : "ok");
      summary.textContent = answer.message || `Contactos nuevos: ${created}. Actualizados: ${updated}.`;
      const tbody = errors.querySelector("tbody");
      tbody.replaceChildren(...rows.map((e) => el("tr", {}, el("td", {}, e.row), el("td", {}, e.field || "—"), el("td", {}, e.message))));
      errors.hidden = !rows.length;
      result.hidden = false;
      if (created || updated) toast("Importación terminada.");
    });
  }

  function initContact() {
    const box = document.getElementById("contact");
    const base = "/api/console/contacts/" + encodeURIComponent(box.dataset.pageId) + "/" + encodeURIComponent(box.dataset.psid);

    function renderTags(contact) {
      const list = document.getElementById("contact-tags");
      list.replaceChildren(...contact.tags.map((tag) => el("li", { class: "tag" }, tag + " ",
        el("button", { type: "button", class: "link danger remove-tag", dataset: { tag }, title: "Quitar la etiqueta", "aria-label": "Quitar " + tag }, "×"))));
      document.getElementById("contact-tags-empty").hidden = contact.tags.length > 0;
    }

    function renderFields(contact) {
      const rows = Object.keys(contact.fields).sort().map((key) => el("tr", { dataset: { key } },
        el("td", {}, el("code", {}, key)),
        el("td", {}, el("input", { class: "field-value", dataset: { key }, value: contact.fields[key], maxlength: "500", "aria-label": "Valor de " + key })),
        el("td", { class: "nowrap" }, el("button", { type: "button", class: "save-field", dataset: { key } }, "Guardar"), " ",
          el("button", { type: "button", class: "link danger delete-field", dataset: { key } }, "Borrar"))));
      document.getElementById("field-rows").replaceChildren(...rows);
    }

    async function loadKnownTags() {
      try {
        const answer = await api("GET", "/api/console/tags?page_id=" + encodeURIComponent(box.dataset.pageId));
        document.getElementById("known-tags").replaceChildren(...answer.tags.map((t) => el("option", { value: t.tag })));
      } catch (_) { /* suggestions only */ }
    }

    async function saveFields(fields, done) {
      try {
        const answer = await api("PATCH", base + "/fields", { fields });
        renderFields(answer.contact);
        toast(done);
        return true;
      } catch (error) { toast(error.message, true); return false; }
    }

    document.getElementById("tag-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("tag-input");
      try {
        const answer = await api("POST", base + "/tags", { tags: [input.value] });
        renderTags(answer.contact);
        input.value = "";
        toast("Etiqueta añadida.");
      } catch (error) { toast(error.message, true); }
    });
    document.getElementById("contact-tags").addEventListener("click", async (event) => {
      const button = event.target.closest("button.remove-tag");
      if (!button) return;
      try {
        // in the body, not the path: a tag may hold "/" or be ".." (the browser would resolve it as a path)
        renderTags((await api("POST", base + "/tags/remove", { tags: [button.dataset.tag] })).contact);
      } catch (error) { toast(error.message, true); }
    });
    document.getElementById("field-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = document.getElementById("field-key"), value = document.getElementById("field-value");
      if (await saveFields({ [key.value.trim()]: value.value }, "Campo guardado.")) { key.value = ""; value.value = ""; }
    });
    document.getElementById("field-rows").addEventListener("click", async (event) => {
      const save = event.target.closest("button.save-field");
      const remove = event.target.closest("button.delete-field");
      if (save) {
        const input = document.querySelector(`input.field-value[data-key="${CSS.escape(save.dataset.key)}"]`);
        await saveFields({ [save.dataset.key]: input.value }, "Campo guardado.");
      } else if (remove) {
        await saveFields({ [remove.dataset.key]: null }, "Campo borrado.");
      }
    });
    document.getElementById("note-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = document.getElementById("note-text");
      try {
        const answer = await api("POST", base + "/notes", { text: text.value });
        const note = answer.note;
        document.getElementById("notes").prepend(el("li", { class: "note" }, el("p", { class: "note-text" }, note.text),
          el("span", { class: "muted small" }, note.author + " · ", el("time", { datetime: note.created_at }, dateTime(note.created_at)))));
        document.getElementById("notes-empty").hidden = true;
        text.value = "";
        toast("Nota guardada.");
      } catch (error) { toast(error.message, true); }
    });
    loadKnownTags();
  }

  // --- notice: a sound and a desktop notification when a conversation is paused for a person (opt-in) ----

  // Stored per browser: each agent chooses on each computer. The sound is console/notice_sound.py's chime.
  const NOTICE_KEY = "ecuabots.aviso-pausa";
  function initNotice() {
    const toggle = document.getElementById("notice-toggle");
    if (!toggle) return;
    const me = document.getElementById("current-user").dataset.username;
    const sound = new Audio("/console/assets/notice.wav");
    let listening = false;
    function enabled() { return localStorage.getItem(NOTICE_KEY) === "1"; }
    function listen() { if (!listening) { listening = true; live(notify, () => {}); } }
    async function describe(event) {
      const conversation = (event.data && event.data.conversation) || {};
      let name = null;
      let reason = null;
      try {
        const contact = await api("GET", "/api/console/contacts/" + encodeURIComponent(conversation.page_id) + "/" +
                                  encodeURIComponent(conversation.user_id));
        name = contact.contact.display_name;
      } catch (_) { name = null; }  // no contact record yet: the PSID says who
      try {
        const listed = (await api("GET", "/api/console/conversations")).conversations;
        const found = listed.find((c) => c.id === event.conversation_id);
        if (found) { reason = found.paused_reason_es; name = name || found.contact_name; }
      } catch (_) { reason = null; }
      return { name: name || ("Cliente (PSID …" + String(conversation.user_id || "").slice(-4) + ")"), reason };
    }
    async function notify(event) {
      if (event.kind !== "paused" || !enabled()) return;
      if (event.data && event.data.by === me) return;  // paused by this agent: they know
      const { name, reason } = await describe(event);
      const body = name + (reason ? ": " + reason : "");
      const url = "/console/conversations/" + encodeURIComponent(event.conversation_id);
      try { sound.currentTime = 0; await sound.play(); } catch (_) { /* the browser blocked sound until a click */ }
      if ("Notification" in window && Notification.permission === "granted") {
        const notice = new Notification("Una conversación espera a una persona", { body, tag: "pausa-" + event.conversation_id });
        notice.onclick = () => { window.focus(); location.href = url; notice.close(); };
      }
      toast("Una conversación espera a una persona: " + body);
    }
    toggle.checked = enabled();
    toggle.addEventListener("change", async () => {
      if (!toggle.checked) { localStorage.removeItem(NOTICE_KEY); toast("Ya no se le avisará."); return; }
      localStorage.setItem(NOTICE_KEY, "1");
      let permission = "Notification" in window ? Notification.permission : "denied";
      if (permission === "default") {
        try { permission = await Notification.requestPermission(); } catch (_) { permission = "denied"; }
      }
      try { sound.currentTime = 0; await sound.play(); } catch (_) { /* a sample of the sound; blocked is fine */ }
      if (permission === "granted") toast("Le avisaremos con un sonido y una notificación de escritorio.");
      else toast("Le avisaremos con un sonido; este navegador no permite notificaciones de escritorio para la consola.", true);
      listen();
    });
    if (toggle.checked) listen();
  }

  // The «Transmisiones» and «Preguntas sin respuesta» pages (assets/broadcasts.js, unanswered.js, loaded after this
  // file) use the same helpers.
  window.consoleKit = Object.freeze({ api, el, toast, pageData, dateTime, showReport, publishDraft });

  const pages = { inbox: initInbox, conversation: initConversation, snippets: initSnippets, knowledge: initKnowledge, links: initLinks, comments: initComments, "page-profile": initPageProfile, contacts: initContacts, contact: initContact };
  if (pages[pageName]) pages[pageName]();
  initNotice();
})();
