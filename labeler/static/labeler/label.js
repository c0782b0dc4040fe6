// The labeling page: keyboard-first, prefetching, saves in the background with retries.
// Keys: class hotkeys label; Enter accepts the suggestion; S skips (Shift+S asks a reason);
// Z or Backspace undoes; ? shows the keys.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("label-config").textContent);
  const classesById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classesByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  const img = document.getElementById("current-image");
  const $ = (id) => document.getElementById(id);
  const PREFETCH = 4;
  let queue = [];          // prefetched items, images already downloading and decoding
  let current = null;
  let shownAt = 0;
  let fetching = null;
  let exhausted = false;
  let modelVersion = null;
  let pendingSaves = 0;
  const history = [];      // [{item, action}] for undo
  const chains = new Map();  // item id -> promise of its last save (saves of one item stay ordered)
  const session = { count: 0, first: null };

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function renderButtons() {
    const box = $("class-buttons");
    for (const c of cfg.classes) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "class-button";
      b.dataset.label = c.id;
      b.style.setProperty("--c", c.color || "#888");
      // DOM nodes and textContent only: class names are users' strings.
      const kbd = document.createElement("kbd");
      kbd.textContent = c.hotkey || "";
      const name = document.createElement("span");
      name.textContent = c.name;
      b.append(kbd, " ", name);
      b.addEventListener("click", () => { b.blur(); label(c.id); });
      box.appendChild(b);
    }
    const help = $("help-keys");
    for (const c of cfg.classes) {
      if (!c.hotkey) continue;
      const row = document.createElement("tr");
      const kbd = document.createElement("kbd");
      kbd.textContent = c.hotkey;
      row.insertCell().append(kbd);
      row.insertCell().textContent = c.name;
      help.appendChild(row);
    }
  }

  function preload(item) {
    const im = new Image();
    im.src = item.url;
    item.ready = im.decode().catch(() => undefined);
    item.el = im;  // keep a reference so the decoded image stays in memory
    return item;
  }

  async function refill() {
    if (fetching || exhausted || queue.length >= PREFETCH) return fetching;
    const held = [current, ...queue, ...history.map((h) => h.item)].filter(Boolean).map((i) => i.id);
    const url = `${cfg.nextUrl}?n=${PREFETCH - queue.length}&exclude=${held.slice(-200).join(",")}`;
    fetching = (async () => {
      try {
        const r = await fetch(url, { headers: { Accept: "application/json" } });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        const data = await r.json();
        const known = new Set([current, ...queue].filter(Boolean).map((i) => i.id));
        const fresh = data.items.filter((i) => !known.has(i.id));
        if (!data.items.length) exhausted = true;
        fresh.forEach((i) => queue.push(preload(i)));
      } catch (err) {
        setTimeout(refill, 1000);
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  }

  function showSuggestion(item) {
    const box = $("suggestion");
    document.querySelectorAll(".class-button").forEach((b) => b.classList.remove("suggested"));
    delete box.dataset.label;
    if (!item || !item.suggestion) { box.textContent = modelVersion ? "No suggestion" : "No model yet"; return; }
    const c = classesById.get(item.suggestion.label);
    box.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = c ? c.name : "?";
    box.append("Model suggests ", strong, ` (${Math.round(item.suggestion.confidence * 100)} %) · Enter accepts`);
    box.dataset.label = item.suggestion.label;
    const btn = document.querySelector(`.class-button[data-label="${item.suggestion.label}"]`);
    if (btn) btn.classList.add("suggested");
  }

  function show(item) {
    current = item;
    $("loading").hidden = true;
    if (!current) {
      img.hidden = true;
      delete img.dataset.itemId;
      $("empty").hidden = false;
      showSuggestion(null);
      return;
    }
    $("empty").hidden = true;
    img.src = current.url;
    img.dataset.itemId = current.id;
    img.hidden = false;
    shownAt = performance.now();
    showSuggestion(current);
    const prior = history.length && current.previous;
    $("relabel-note").hidden = !prior;
  }

  async function showNext() {
    let item = queue.shift() || null;
    if (!item) {
      await refill();
      item = queue.shift() || null;
    }
    show(item);
    refill();
  }

  function post(url, payload, attempt = 0) {
    pendingSaves += 1;
    updateSaveStatus();
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(payload),
    }).then(async (r) => {
      if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        $("save-status").textContent = `error: ${e.error || r.status}`;
        return null;
      }
      return r.json();
    }).catch(() => new Promise((resolve) => {
      // Network trouble: retry with backoff; the client_id makes the retry idempotent.
      setTimeout(() => resolve(post(url, payload, attempt + 1)), Math.min(10000, 300 * 2 ** attempt));
    })).finally(() => { pendingSaves -= 1; updateSaveStatus(); });
  }

  function enqueueSave(itemId, url, payload) {
    const before = chains.get(itemId) || Promise.resolve();
    const next = before.then(() => post(url, payload));
    chains.set(itemId, next);
    return next;
  }

  function updateSaveStatus() {
    $("save-status").textContent = pendingSaves ? `saving (${pendingSaves})` : "all saved";
  }

  function countLabel() {
    session.count += 1;
    session.first = session.first || performance.now();
    $("session-count").textContent = session.count;
    const minutes = (performance.now() - session.first) / 60000;
    $("session-rate").textContent = minutes > 0.05 ? (session.count / minutes).toFixed(1) : "–";
  }

  function label(classId) {
    if (!current) return;
    const item = current;
    enqueueSave(item.id, cfg.saveUrl, {
      item: item.id,
      label: classId,
      seconds: (performance.now() - shownAt) / 1000,
      client_id: uuid(),
    });
    if (!item.previous) countLabel();
    item.previous = { action: "label", label: classId };
    history.push({ item, action: "label" });
    showNext();
  }

  function skip(reason) {
    if (!current) return;
    const item = current;
    enqueueSave(item.id, cfg.skipUrl, { item: item.id, reason: reason || "" });
    item.previous = { action: "skip" };
    history.push({ item, action: "skip" });
    showNext();
  }

  function undo() {
    const last = history.pop();
    if (!last) return;
    if (current) queue.unshift(current);
    show(last.item);
  }

  function askReason() {
    if (!current) return;
    const box = $("skip-reason");
    box.hidden = false;
    const input = box.querySelector("input");
    input.value = "";
    input.focus();
  }

  $("skip-reason").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const box = $("skip-reason");
    const input = box.querySelector("input");
    box.hidden = true;
    input.blur();
    skip(input.value);
  });

  function toggleHelp(force) {
    const help = $("help");
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName)) {
      if (ev.key === "Escape") { $("skip-reason").hidden = true; t.blur(); }
      return;
    }
    if (ev.key === "?") { ev.preventDefault(); toggleHelp(); return; }
    if (ev.key === "Escape") { toggleHelp(false); return; }
    if (ev.key === "Enter") {
      if (current && current.suggestion) { ev.preventDefault(); label(current.suggestion.label); }
      return;
    }
    if (ev.key === "Backspace" || ev.key === "z" || ev.key === "Z") { ev.preventDefault(); undo(); return; }
    if (ev.key === "S") { ev.preventDefault(); askReason(); return; }
    if (ev.key === "s") { ev.preventDefault(); skip(""); return; }
    const c = classesByKey.get(ev.key.toLowerCase());
    if (c) { ev.preventDefault(); label(c.id); }
  });

  async function pollStatus() {
    try {
      const r = await fetch(cfg.statusUrl, { headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const s = await r.json();
      $("progress").textContent = `${s.labeled} / ${s.items}`;
      const m = s.model;
      let text = m ? `v${m.version} · ${m.labels_used} labels` : "none yet";
      if (m && m.audit_accuracy != null) {
        text += ` · est. accuracy ${Math.round(m.audit_accuracy * 100)} %`;
        if (m.audit_ci) text += ` (${Math.round(m.audit_ci[0] * 100)}–${Math.round(m.audit_ci[1] * 100)})`;
      } else if (m && m.cv_accuracy != null) text += ` · CV accuracy ${Math.round(m.cv_accuracy * 100)} %`;
      $("model-status").textContent = text;
      $("retraining").hidden = !s.retraining;
      $("delayed").hidden = !s.delayed;
      $("delayed").textContent = s.delayed || "";
      const version = m ? m.version : null;
      if (version !== modelVersion) {
        const changed = modelVersion !== null || version !== null;
        modelVersion = version;
        if (changed) await refreshSuggestions();
      }
    } catch (err) { /* offline for a moment: try again next tick */ }
  }

  // A new model: fresh suggestions and ranking, without a page reload.
  async function refreshSuggestions() {
    const ids = [current, ...queue].filter(Boolean);
    if (!ids.length) { exhausted = false; refill(); return; }
    const r = await fetch(`${cfg.nextUrl}?n=${ids.length}`, { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const d = await r.json();
    const byId = new Map(d.items.map((i) => [i.id, i]));
    for (const item of ids) {
      const fresh = byId.get(item.id);
      if (fresh) item.suggestion = fresh.suggestion;
    }
    if (current) showSuggestion(current);
  }

  renderButtons();
  refill().then(showNext);
  pollStatus();
  setInterval(pollStatus, 3000);
})();
