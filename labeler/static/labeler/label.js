// The labeling page: keyboard-first, prefetching, saves in the background with retries.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("label-config").textContent);
  const classesById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classesByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  const img = document.getElementById("current-image");
  const PREFETCH = 4;
  let queue = [];        // prefetched items, images already decoding
  let current = null;
  let shownAt = 0;
  let fetching = null;
  let sessionCount = 0;
  let pendingSaves = 0;
  let exhausted = false;
  let modelVersion = null;

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
    const box = document.getElementById("class-buttons");
    for (const c of cfg.classes) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "class-button";
      b.dataset.label = c.id;
      b.style.setProperty("--c", c.color || "#888");
      b.innerHTML = `<kbd></kbd> <span></span>`;
      b.querySelector("kbd").textContent = c.hotkey || "";
      b.querySelector("span").textContent = c.name;
      b.addEventListener("click", () => { label(c.id); b.blur(); });
      box.appendChild(b);
    }
  }

  function preload(item) {
    const im = new Image();
    im.src = item.url;
    item.ready = im.decode().catch(() => undefined);
    item.el = im;
    return item;
  }

  async function refill() {
    if (fetching || exhausted || queue.length >= PREFETCH) return fetching;
    const held = [current, ...queue].filter(Boolean).map((i) => i.id);
    const url = `${cfg.nextUrl}?n=${PREFETCH - queue.length}&exclude=${held.join(",")}`;
    fetching = (async () => {
      try {
        const r = await fetch(url, { headers: { Accept: "application/json" } });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        const data = await r.json();
        const known = new Set([current, ...queue].filter(Boolean).map((i) => i.id));
        const fresh = data.items.filter((i) => !known.has(i.id));
        if (!fresh.length && !data.items.length) exhausted = true;
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
    const box = document.getElementById("suggestion");
    document.querySelectorAll(".class-button").forEach((b) => b.classList.remove("suggested"));
    if (!item || !item.suggestion) { box.textContent = modelVersion ? "No suggestion" : "No model yet"; return; }
    const c = classesById.get(item.suggestion.label);
    box.innerHTML = "";
    const strong = document.createElement("strong");
    strong.textContent = c ? c.name : "?";
    box.append("Model suggests ", strong, ` (${Math.round(item.suggestion.confidence * 100)} %)`);
    box.dataset.label = item.suggestion.label;
    const btn = document.querySelector(`.class-button[data-label="${item.suggestion.label}"]`);
    if (btn) btn.classList.add("suggested");
  }

  async function showNext() {
    current = queue.shift() || null;
    if (!current) {
      await refill();
      current = queue.shift() || null;
    }
    document.getElementById("loading").hidden = true;
    if (!current) {
      img.hidden = true;
      document.getElementById("empty").hidden = false;
      showSuggestion(null);
      return;
    }
    document.getElementById("empty").hidden = true;
    img.src = current.url;
    img.dataset.itemId = current.id;
    img.hidden = false;
    shownAt = performance.now();
    showSuggestion(current);
    refill();
  }

  async function save(payload, attempt = 0) {
    pendingSaves += 1;
    updateSaveStatus();
    try {
      const r = await fetch(cfg.saveUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify(payload),
      });
      if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        document.getElementById("save-status").textContent = `error: ${e.error || r.status}`;
        return;
      }
    } catch (err) {
      // Network trouble: retry with backoff; the client_id makes the retry idempotent.
      const delay = Math.min(10000, 500 * 2 ** attempt);
      setTimeout(() => save(payload, attempt + 1), delay);
    } finally {
      pendingSaves -= 1;
      updateSaveStatus();
    }
  }
  function updateSaveStatus() {
    document.getElementById("save-status").textContent = pendingSaves ? `saving (${pendingSaves})` : "all saved";
  }

  function label(classId) {
    if (!current) return;
    const payload = {
      item: current.id,
      label: classId,
      seconds: (performance.now() - shownAt) / 1000,
      client_id: uuid(),
    };
    sessionCount += 1;
    document.getElementById("session-count").textContent = sessionCount;
    save(payload);
    showNext();
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && ["INPUT", "TEXTAREA", "SELECT"].includes(ev.target.tagName)) return;
    const key = ev.key.toLowerCase();
    if (key === "enter") {
      if (current && current.suggestion) { ev.preventDefault(); label(current.suggestion.label); }
      return;
    }
    const c = classesByKey.get(key);
    if (c) { ev.preventDefault(); label(c.id); }
  });

  async function pollStatus() {
    try {
      const r = await fetch(cfg.statusUrl, { headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const s = await r.json();
      const m = s.model;
      let text = m ? `v${m.version} · ${m.labels_used} labels` : "none yet";
      if (m && m.audit_accuracy != null) text += ` · est. accuracy ${Math.round(m.audit_accuracy * 100)} %`;
      else if (m && m.cv_accuracy != null) text += ` · CV accuracy ${Math.round(m.cv_accuracy * 100)} %`;
      if (s.retraining) text += " · retraining…";
      document.getElementById("model-status").textContent = text;
      const version = m ? m.version : null;
      if (version !== modelVersion) {
        const first = modelVersion === null && version !== null && sessionCount === 0;
        modelVersion = version;
        if (!first) {
          // New model: refetch the queue so suggestions and ranking are fresh (no page reload).
          queue = [];
          exhausted = false;
          if (current) {
            const r2 = await fetch(`${cfg.nextUrl}?n=1`, { headers: { Accept: "application/json" } });
            if (r2.ok) {
              const d = await r2.json();
              const same = d.items.find((i) => current && i.id === current.id);
              if (same) { current.suggestion = same.suggestion; showSuggestion(current); }
            }
          }
          refill();
        }
      }
    } catch (err) { /* try again next tick */ }
  }

  renderButtons();
  refill().then(showNext);
  pollStatus();
  setInterval(pollStatus, 3000);
})();
