// The labeling page: keyboard-first, prefetching, saves in the background with retries.
// Keys: class hotkeys label (in a multi-label set they toggle tags); Tab / Shift+Tab move between
// label sets; Enter accepts the model's suggestions for the sets not answered yet and submits;
// S skips (Shift+S asks a reason); Z or Backspace undoes; ? shows the keys.
// One single-choice set: a key labels and moves on at once, as ever.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("label-config").textContent);
  const classesById = new Map(cfg.classes.map((c) => [c.id, c]));
  const sets = cfg.sets.map((s) => ({ ...s, classes: cfg.classes.filter((c) => c.set === s.id) }));
  const setsById = new Map(sets.map((s) => [s.id, s]));
  const single = sets.filter((s) => s.kind !== "multi");
  const oneQuestion = sets.length === 1 && single.length === 1;
  let answers = new Map();  // set id -> class id (single-choice) or Set of tag ids (multi-label)
  let active = 0;           // index of the set in focus
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
    const help = $("help-keys");
    for (const set of sets) {
      const block = document.createElement("section");
      block.className = "label-set";
      block.dataset.set = set.id;
      if (!oneQuestion) {
        const head = document.createElement("h3");
        head.textContent = set.name;
        const kind = document.createElement("span");
        kind.className = "hint";
        kind.textContent = set.kind === "multi" ? " · tags, any number" : " · one";
        head.append(kind);
        const hint = document.createElement("p");
        hint.className = "set-suggestion hint";
        block.append(head, hint);
      }
      for (const c of set.classes) {
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
        b.addEventListener("click", () => { b.blur(); choose(c); });
        block.appendChild(b);
        if (!c.hotkey) continue;
        const row = document.createElement("tr");
        const key = document.createElement("kbd");
        key.textContent = c.hotkey;
        row.insertCell().append(key);
        row.insertCell().textContent = oneQuestion ? c.name : `${set.name}: ${c.name}`;
        help.appendChild(row);
      }
      box.appendChild(block);
    }
    if (!oneQuestion) {
      const row = document.createElement("tr");
      const key = document.createElement("kbd");
      key.textContent = "Tab";
      row.insertCell().append(key);
      row.insertCell().textContent = "next label set (Shift+Tab: previous)";
      help.appendChild(row);
    }
  }

  // The model's suggestion per set: {label, confidence} or, for multi-label sets, {tags, confidence}.
  function suggestionsOf(item) {
    const out = new Map();
    if (!item) return out;
    if (item.suggestion) {
      const c = classesById.get(item.suggestion.label);
      if (c) out.set(c.set, { label: c.id, confidence: item.suggestion.confidence });
    }
    for (const p of item.suggestions || []) {
      const set = setsById.get(p.set);
      if (!set) continue;
      if (set.kind !== "multi") { out.set(set.id, { label: p.label, confidence: p.confidence }); continue; }
      const s = out.get(set.id) || { tags: [], confidence: 1 };
      if (p.label !== null) s.tags.push(p.label);
      s.confidence = Math.min(s.confidence, p.confidence);
      out.set(set.id, s);
    }
    return out;
  }

  function renderState() {
    const suggested = suggestionsOf(current);
    document.querySelectorAll(".label-set").forEach((block, i) => {
      const set = setsById.get(Number(block.dataset.set));
      block.classList.toggle("active", !oneQuestion && i === active);
      const answer = answers.get(set.id);
      const s = suggested.get(set.id);
      block.querySelectorAll(".class-button").forEach((b) => {
        const id = Number(b.dataset.label);
        b.classList.toggle("chosen", set.kind === "multi" ? Boolean(answer && answer.has(id)) : answer === id);
        b.classList.toggle("suggested", Boolean(s && (s.label === id || (s.tags && s.tags.includes(id)))));
        b.setAttribute("aria-pressed", b.classList.contains("chosen") ? "true" : "false");
      });
      const hint = block.querySelector(".set-suggestion");
      if (hint) {
        if (!s) hint.textContent = modelVersion ? "no suggestion" : "";
        else if (s.tags) hint.textContent = `suggests ${s.tags.map((t) => classesById.get(t).name).join(", ") || "no tags"}`;
        else hint.textContent = `suggests ${classesById.get(s.label).name} (${Math.round(s.confidence * 100)} %)`;
      }
    });
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
    delete box.dataset.label;
    const suggested = suggestionsOf(item);
    renderState();
    if (!item || !suggested.size) { box.textContent = modelVersion ? "No suggestion" : "No model yet"; return; }
    box.textContent = "";
    box.append("Model suggests ");
    let first = true;
    for (const set of sets) {
      const s = suggested.get(set.id);
      if (!s) continue;
      if (!first) box.append(" · ");
      first = false;
      if (!oneQuestion) box.append(`${set.name}: `);
      const strong = document.createElement("strong");
      const names = s.tags ? s.tags.map((t) => classesById.get(t).name).join(", ") || "no tags"
        : (classesById.get(s.label) || { name: "?" }).name;
      strong.textContent = names;
      box.append(strong);
      if (!s.tags) box.append(` (${Math.round(s.confidence * 100)} %)`);
    }
    box.append(" · Enter accepts");
    if (item.suggestion) box.dataset.label = item.suggestion.label;
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
    answers = new Map();
    if (!oneQuestion && current.previous && current.previous.answers) {
      for (const [k, v] of current.previous.answers) answers.set(k, v instanceof Set ? new Set(v) : v);
    }
    active = 0;
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

  // A key or a click on class c: answers its set (toggles the tag in a multi-label set).
  function choose(c) {
    if (!current) return;
    const set = setsById.get(c.set);
    const index = sets.indexOf(set);
    if (set.kind === "multi") {
      const tags = answers.get(set.id) || new Set();
      if (tags.has(c.id)) tags.delete(c.id); else tags.add(c.id);
      answers.set(set.id, tags);
      active = index;
      renderState();
      return;
    }
    answers.set(set.id, c.id);
    if (single.every((s) => answers.has(s.id)) && single.length === sets.length) { submit(); return; }
    // Focus moves on to the next set without an answer (multi-label sets always take one).
    const next = sets.findIndex((s, i) => i > index && (s.kind === "multi" || !answers.has(s.id)));
    const open = sets.findIndex((s) => s.kind !== "multi" && !answers.has(s.id));
    active = next >= 0 ? next : open >= 0 ? open : index;
    renderState();
  }

  // Enter: the model's suggestion fills every set not answered yet; then the visit is saved.
  function acceptAndSubmit() {
    if (!current) return false;
    const suggested = suggestionsOf(current);
    for (const set of sets) {
      const s = suggested.get(set.id);
      if (answers.has(set.id) || !s) continue;
      answers.set(set.id, set.kind === "multi" ? new Set(s.tags) : s.label);
    }
    const missing = sets.findIndex((s) => s.kind !== "multi" && !answers.has(s.id));
    if (missing >= 0) {
      if (oneQuestion) return false;
      active = missing;
      renderState();
      $("save-status").textContent = `${sets[missing].name}: choose one`;
      return true;
    }
    submit();
    return true;
  }

  function submit() {
    const item = current;
    const payload = { item: item.id, seconds: (performance.now() - shownAt) / 1000, client_id: uuid() };
    if (oneQuestion) payload.label = answers.get(sets[0].id);
    else {
      payload.labels = sets.map((s) => s.kind === "multi"
        ? { set: s.id, tags: Array.from(answers.get(s.id) || []) }
        : { set: s.id, label: answers.get(s.id) });
    }
    enqueueSave(item.id, cfg.saveUrl, payload);
    if (!item.previous) countLabel();
    item.previous = { action: "label", answers: new Map(answers) };
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
      if (acceptAndSubmit()) ev.preventDefault();
      return;
    }
    if (ev.key === "Tab" && !oneQuestion) {
      ev.preventDefault();
      active = (active + (ev.shiftKey ? sets.length - 1 : 1)) % sets.length;
      renderState();
      return;
    }
    if (ev.key === "Backspace" || ev.key === "z" || ev.key === "Z") { ev.preventDefault(); undo(); return; }
    if (ev.key === "S") { ev.preventDefault(); askReason(); return; }
    if (ev.key === "s") { ev.preventDefault(); skip(""); return; }
    // The set in focus first: two sets may share a key.
    const key = ev.key.toLowerCase();
    const focused = sets[active] ? sets[active].classes.find((x) => x.hotkey === key) : null;
    const c = focused || cfg.classes.find((x) => x.hotkey === key);
    if (c) { ev.preventDefault(); choose(c); }
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
      if (fresh) { item.suggestion = fresh.suggestion; item.suggestions = fresh.suggestions; }
    }
    if (current) showSuggestion(current);
  }

  renderButtons();
  refill().then(showNext);
  pollStatus();
  setInterval(pollStatus, 3000);
})();
