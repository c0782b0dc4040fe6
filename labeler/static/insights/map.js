/* Embedding map: every item as one point on a canvas (ECharts large scatter), coloured by label
   or prediction; hover shows a thumbnail, click opens the item. The server sends compact
   base64 typed arrays (see labeler/insights/maps.py), not one object per item. */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("map-config").textContent);
  const el = document.getElementById("map");
  const statusEl = document.getElementById("map-status");
  const NONE = 255;
  const esc = window.escapeHtml; // labeler/escape.js
  const chart = echarts.init(el, null, { renderer: "canvas" });
  window.addEventListener("resize", () => chart.resize());
  let state = null; // decoded payload
  let seriesIndex = []; // per series: Int32Array of point indices
  let pollTimer = null;
  let payload = null; // the last response, for the status line
  let shown = 0; // points drawn after the filter

  function decode(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  function mode() { return document.querySelector("input[name=color]:checked").value; }

  function build() {
    if (!state) return;
    const by = mode() === "pred" ? state.pred : state.label;
    const onlyDisagree = document.getElementById("only-disagree").checked;
    const size = Number(document.getElementById("point-size").value);
    const k = state.classes.length;
    const counts = new Int32Array(k + 1);
    const keep = new Uint8Array(state.n);
    for (let i = 0; i < state.n; i++) {
      // Out-of-fold disagreements: the label-errors page's candidates (labeler/insights/maps.py).
      if (onlyDisagree && !state.disagree[i]) continue;
      keep[i] = 1;
      const c = by[i] === NONE ? k : by[i];
      counts[c]++;
    }
    shown = 0;
    for (let c = 0; c <= k; c++) shown += counts[c];
    if (payload) status(payload);
    const idx = [], xy = [];
    for (let c = 0; c <= k; c++) { idx.push(new Int32Array(counts[c])); xy.push(new Float32Array(2 * counts[c])); }
    const fill = new Int32Array(k + 1);
    for (let i = 0; i < state.n; i++) {
      if (!keep[i]) continue;
      const c = by[i] === NONE ? k : by[i];
      const f = fill[c]++;
      idx[c][f] = i;
      xy[c][2 * f] = state.x[i] / 65535;
      xy[c][2 * f + 1] = state.y[i] / 65535;
    }
    // Unlabeled / unpredicted first, so that classes are drawn on top of them.
    const order = [k].concat([...Array(k).keys()]);
    const series = [];
    seriesIndex = [];
    for (const c of order) {
      const isNone = c === k;
      const name = isNone ? (mode() === "pred" ? "no prediction" : "unlabeled") : state.classes[c].name;
      seriesIndex.push(idx[c]);
      series.push({
        name: name, type: "scatter", data: xy[c], dimensions: ["x", "y"],
        large: true, largeThreshold: 1000, progressive: 0,
        symbolSize: isNone ? Math.max(1, size - 1) : size,
        itemStyle: { color: isNone ? "#b9bec7" : state.classes[c].color, opacity: isNone ? 0.45 : 0.85 },
        emphasis: { disabled: true },
      });
    }
    const mark = highlight();
    if (mark) { seriesIndex.push(Int32Array.of(mark.index)); series.push(mark.series); }
    chart.setOption({
      animation: false,
      grid: { left: 10, right: 10, top: 40, bottom: 10 },
      legend: { top: 0, type: "scroll" },
      tooltip: {
        trigger: "item", confine: true, transitionDuration: 0, showDelay: 40,
        formatter: tooltip,
      },
      xAxis: { type: "value", show: false, min: -0.02, max: 1.02, scale: true },
      yAxis: { type: "value", show: false, min: -0.02, max: 1.02, scale: true },
      dataZoom: [
        { type: "inside", xAxisIndex: 0, filterMode: "none" },
        { type: "inside", yAxisIndex: 0, filterMode: "none" },
      ],
      series: series,
    }, { notMerge: true });
  }

  // ?item=ID (the item page's "Show on the map"): that item ringed, drawn over every class.
  const highlightId = Number(new URLSearchParams(window.location.search).get("item")) || null;
  function highlight() {
    const i = highlightId ? state.ids.indexOf(highlightId) : -1;
    if (i < 0) return null;
    return {
      index: i,
      series: {
        name: "item " + highlightId, type: "scatter", z: 10, symbolSize: 18,
        data: [[state.x[i] / 65535, state.y[i] / 65535]],
        itemStyle: { color: "rgba(0,0,0,0)", borderColor: "#d62728", borderWidth: 3 },
      },
    };
  }

  function pointOf(params) {
    const ids = seriesIndex[params.seriesIndex];
    if (!ids || params.dataIndex == null || params.dataIndex >= ids.length) return null;
    return ids[params.dataIndex];
  }

  function className(c) { return c === NONE ? "–" : state.classes[c].name; }

  function tooltip(params) {
    const i = pointOf(params);
    if (i == null) return "";
    const id = state.ids[i];
    const url = config.thumbUrl.replace("{id}", id);
    const conf = state.pred[i] === NONE ? "" : " (" + Math.round((100 * state.conf[i]) / 255) + " %)";
    // ECharts puts this string into innerHTML: every value is escaped (class names are users').
    return '<div class="map-tip"><img src="' + esc(url) + '" width="160" height="160" alt="">' +
      "<div>item " + esc(id) + "<br>label: <b>" + esc(className(state.label[i])) + "</b><br>predicted: " +
      esc(className(state.pred[i])) + esc(conf) +
      (state.oof[i] === NONE ? "" : "<br>out-of-fold: " + esc(className(state.oof[i]))) + "</div></div>";
  }

  // Canvas position of an item's point (used by tests, and handy from the console).
  function pixelOf(itemId) {
    if (!state) return null;
    const i = state.ids.indexOf(itemId);
    if (i < 0) return null;
    return chart.convertToPixel({ xAxisIndex: 0, yAxisIndex: 0 }, [state.x[i] / 65535, state.y[i] / 65535]);
  }

  chart.on("click", (params) => {
    const i = pointOf(params);
    if (i == null) return;
    window.open(config.itemUrl.replace("{id}", state.ids[i]), "_blank", "noopener");
  });

  function status(p) {
    let t = "";
    if (p.n) {
      t += (shown === p.n ? p.n.toLocaleString() : shown.toLocaleString() + " of " + p.n.toLocaleString()) +
        " items shown (" + (p.method || "") + ", " + p.seconds + " s)";
    }
    if (p.sampled) {
      t += (t ? " · " : "") + "a sample of the " + p.mapped.toLocaleString() +
        " mapped: every labeled item and a uniform random share of the rest";
    }
    if (p.embedded < p.items) t += (t ? " · " : "") + (p.items - p.embedded) + " not embedded yet";
    if (p.status === "computing") t += (t ? " · " : "") + "computing a new map…";
    if (p.status === "stale") t += (t ? " · " : "") + "map out of date (no worker reachable)";
    if (p.status === "empty") t = "No embeddings yet: import images and wait for the embedding task.";
    statusEl.textContent = t;
  }

  async function load() {
    clearTimeout(pollTimer);
    let p;
    try {
      const r = await fetch(config.dataUrl, { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error("HTTP " + r.status);
      p = await r.json();
    } catch (err) {
      statusEl.textContent = "Could not load the map: " + err.message;
      pollTimer = setTimeout(load, 10000);
      return;
    }
    if (p.n) {
      const t0 = performance.now();
      const slider = document.getElementById("point-size");
      if (!slider.dataset.touched) slider.value = p.n < 2000 ? 7 : p.n < 20000 ? 4 : 2;
      state = {
        n: p.n, classes: p.classes, ids: decode(p.ids, Int32Array),
        x: decode(p.x, Uint16Array), y: decode(p.y, Uint16Array),
        label: decode(p.label, Uint8Array), pred: decode(p.pred, Uint8Array), conf: decode(p.conf, Uint8Array),
        oof: decode(p.oof, Uint8Array), disagree: decode(p.disagree, Uint8Array),
      };
      payload = p;
      const box = document.getElementById("only-disagree");
      box.disabled = p.oof_source == null;
      document.getElementById("disagree-note").textContent = p.oof_source == null
        ? "(no out-of-fold predictions yet)"
        : "(" + p.disagree_n.toLocaleString() + ", out-of-fold, " + p.oof_source + ")";
      build();
      window.labelerMap = { chart: chart, n: p.n, drawMs: performance.now() - t0, status: p.status, pixelOf: pixelOf, shown: () => shown, highlighted: !!(highlightId && state.ids.indexOf(highlightId) >= 0) };
    }
    status(p);
    if (p.status === "computing") pollTimer = setTimeout(load, p.n ? 8000 : 3000);
  }

  document.querySelectorAll("input[name=color], #only-disagree, #point-size").forEach((c) => c.addEventListener("change", build));
  document.getElementById("point-size").addEventListener("input", (e) => { e.target.dataset.touched = "1"; });
  load();
})();
