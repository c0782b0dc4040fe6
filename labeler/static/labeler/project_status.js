/* Project page: refresh the status box (labels, embeddings, model) every 3 s. */
(function () {
  const box = document.getElementById("project-status");
  async function poll() {
    try {
      const r = await fetch(box.dataset.url, {headers: {"Accept": "application/json"}});
      if (!r.ok) return;
      const s = await r.json();
      document.getElementById("st-labeled").textContent = s.labeled + " / " + s.items;
      const e = s.embedding;
      let t = e.done + " / " + e.total + " (" + e.status;
      if (e.status === "running" && e.images_per_second) t += ", " + e.images_per_second + " img/s" + (e.seconds_left != null ? ", ~" + e.seconds_left + " s left" : "");
      document.getElementById("st-embed").textContent = t + ")";
      const bar = document.getElementById("st-embed-bar"); bar.max = Math.max(e.total, 1); bar.value = e.done;
      const delayed = document.getElementById("st-delayed"); delayed.hidden = !s.delayed; delayed.textContent = s.delayed || "";
      document.getElementById("st-model").textContent = (s.model ? "v" + s.model.version + " on " + s.model.labels_used + " labels" : "none yet") + (s.retraining ? " · retraining…" : "");
    } catch (err) { /* offline for a moment: try again next tick */ }
  }
  setInterval(poll, 3000);
})();
