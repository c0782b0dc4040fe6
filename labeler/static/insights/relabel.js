/* One-click relabeling from the label-error list and the item page. */
(function () {
  "use strict";
  const root = document.querySelector("[data-relabel-url]");
  if (!root) return;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : root.dataset.csrf;
  }

  async function relabel(card, labelId, labelName) {
    const itemId = card.dataset.item;
    const url = root.dataset.relabelUrl.replace("{id}", itemId);
    const status = card.querySelector(".issue-status");
    card.querySelectorAll("button, select").forEach((b) => (b.disabled = true));
    status.textContent = "Saving…";
    try {
      const r = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify({ label: Number(labelId) }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
      card.classList.add("reviewed");
      status.textContent = body.warning ? body.warning : "Saved: " + labelName;
      card.dataset.saved = labelId;
      card.querySelectorAll("button, select").forEach((b) => (b.disabled = false));
    } catch (err) {
      status.textContent = "Not saved: " + err.message;
      card.querySelectorAll("button, select").forEach((b) => (b.disabled = false));
    }
  }

  root.addEventListener("click", (e) => {
    const btn = e.target.closest("button.relabel");
    if (!btn) return;
    const card = btn.closest("[data-item]");
    relabel(card, btn.dataset.label, btn.textContent.replace(/^(→|Keep)\s*/, ""));
  });
  root.addEventListener("change", (e) => {
    const sel = e.target.closest("select.relabel-other");
    if (!sel || !sel.value) return;
    relabel(sel.closest("[data-item]"), sel.value, sel.options[sel.selectedIndex].text);
  });
})();
