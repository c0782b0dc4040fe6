// Grid mode: confirm many confident predictions of one class at once.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("grid-config").textContent);
  const $ = (id) => document.getElementById(id);
  const select = $("grid-class");
  const tiles = $("grid-tiles");
  let items = [];
  let rejected = new Set();
  let cursor = 0;
  let busy = false;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  // Several label sets: one group of options per set ("confirm the most confident red images").
  const groups = new Map();
  for (const s of cfg.sets || []) {
    if (cfg.sets.length < 2) break;
    const g = document.createElement("optgroup");
    g.label = s.name;  // a property, not markup: no escaping needed
    groups.set(s.id, g);
    select.appendChild(g);
  }
  for (const c of cfg.classes) {
    const o = document.createElement("option");
    o.value = c.id;
    o.textContent = c.name;
    (groups.get(c.set) || select).appendChild(o);
  }
  select.addEventListener("change", () => { select.blur(); load(); });

  function render() {
    tiles.textContent = "";
    items.forEach((item, i) => {
      const t = document.createElement("div");
      t.className = "tile" + (rejected.has(item.id) ? " rejected" : "") + (i === cursor ? " cursor" : "");
      t.dataset.itemId = item.id;
      const im = document.createElement("img");
      im.src = item.url;
      im.alt = item.name;
      im.loading = "eager";
      const num = document.createElement("span");
      num.className = "num";
      num.textContent = i + 1;
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = item.suggestion ? `${Math.round(item.suggestion.confidence * 100)} %` : "";
      t.append(im, num, conf);
      t.addEventListener("click", () => { cursor = i; toggle(item.id); });
      tiles.appendChild(t);
    });
    $("grid-empty").hidden = items.length > 0;
    $("grid-class-name").textContent = select.selectedOptions[0] ? select.selectedOptions[0].textContent : "";
  }

  function toggle(id) {
    if (rejected.has(id)) rejected.delete(id); else rejected.add(id);
    render();
  }

  async function load() {
    const r = await fetch(`${cfg.itemsUrl}?label=${select.value}&n=36`, { headers: { Accept: "application/json" } });
    const d = r.ok ? await r.json() : { items: [] };
    items = d.items;
    rejected = new Set();
    cursor = 0;
    render();
  }

  async function confirm() {
    if (busy || !items.length) return;
    busy = true;
    const payload = {
      label: Number(select.value),
      confirmed: items.filter((i) => !rejected.has(i.id)).map((i) => i.id),
      rejected: [...rejected],
    };
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        const r = await fetch(cfg.confirmUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
          body: JSON.stringify(payload),
        });
        if (r.status >= 500) throw new Error(String(r.status));
        const d = await r.json();
        $("grid-status").textContent = r.ok ? `${d.confirmed} confirmed, ${d.rejected} sent back` : `error: ${d.error}`;
        break;
      } catch (err) {
        await new Promise((res) => setTimeout(res, 300 * 2 ** attempt));
      }
    }
    busy = false;
    await load();
  }
  $("grid-confirm").addEventListener("click", (ev) => { ev.target.blur(); confirm(); });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && ["INPUT", "TEXTAREA"].includes(ev.target.tagName)) return;
    const cols = Math.max(1, Math.round(tiles.clientWidth / 156));
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols };
    if (ev.key in moves) {
      ev.preventDefault();
      cursor = Math.min(items.length - 1, Math.max(0, cursor + moves[ev.key]));
      render();
    } else if (ev.key === "x" || ev.key === " ") {
      ev.preventDefault();
      if (items[cursor]) toggle(items[cursor].id);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      confirm();
    } else if (ev.key === "]" || ev.key === "[") {
      const step = ev.key === "]" ? 1 : -1;
      select.selectedIndex = (select.selectedIndex + step + select.options.length) % select.options.length;
      load();
    }
  });
  load();
})();
