/* Backbone check card: while a check runs, poll its progress and reload the page when it ends. */
(function () {
  "use strict";
  const card = document.getElementById("backbone-check");
  if (!card || !card.dataset.active) return;
  const stage = card.querySelector(".check-stage");
  const count = card.querySelector(".check-count");
  const bar = card.querySelector("progress");

  async function poll() {
    try {
      const r = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (r.ok) {
        const s = await r.json();
        if (s.status !== "queued" && s.status !== "running") {
          window.location.reload();
          return;
        }
        // textContent only: the stage names backbones and may one day name user data.
        if (stage) stage.textContent = s.stage || "";
        if (count) count.textContent = s.done + "/" + s.total + " images";
        if (bar) {
          bar.max = Math.max(1, s.total);
          bar.value = s.done;
        }
      }
    } catch (err) {
      /* the next poll retries */
    }
    window.setTimeout(poll, 2000);
  }
  window.setTimeout(poll, 2000);
})();
