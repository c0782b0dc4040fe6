/* Dashboard charts (Apache ECharts, served by the app). Data: the #chart-data JSON island. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const charts = [];
  const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + " %");
  // Tooltip formatters return HTML (ECharts sets innerHTML): names go through esc.
  const esc = window.escapeHtml; // labeler/escape.js

  function make(id) {
    const el = document.getElementById(id);
    if (!el || typeof echarts === "undefined") return null;
    const chart = echarts.init(el, null, { renderer: "canvas" });
    charts.push(chart);
    return chart;
  }

  // Vertical error bars as a custom series: data rows [x, low, high].
  function errorBars(name, rows, color) {
    return {
      name: name, type: "custom", data: rows, z: 1, tooltip: { show: false },
      renderItem: function (params, api) {
        const x = api.value(0);
        const lo = api.coord([x, api.value(1)]);
        const hi = api.coord([x, api.value(2)]);
        const cap = 4;
        const style = { stroke: color, lineWidth: 1.3 };
        return {
          type: "group",
          children: [
            { type: "line", shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style: style },
            { type: "line", shape: { x1: lo[0] - cap, y1: lo[1], x2: lo[0] + cap, y2: lo[1] }, style: style },
            { type: "line", shape: { x1: hi[0] - cap, y1: hi[1], x2: hi[0] + cap, y2: hi[1] }, style: style },
          ],
        };
      },
      encode: { x: 0, y: [1, 2] },
    };
  }

  // Colours of backbones on the learning curve, in the order they first appear.
  const BACKBONE_COLORS = ["#2f6fde", "#d1495b", "#2a9d8f", "#8d5fd3", "#e9a03b", "#5c6b73"];

  function learningCurve() {
    const curve = data.curve;
    if (!curve || !curve.points.length) return;
    const chart = make("chart-curve");
    if (!chart) return;
    const text = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
    const pts = curve.points;
    const backbones = [...new Set(pts.map((p) => p.backbone))];
    const colorOf = (b) => BACKBONE_COLORS[backbones.indexOf(b) % BACKBONE_COLORS.length];
    // Audit accuracy: every version on the same current audit items when a comparison exists
    // (labeler.training.comparison); otherwise each on the audit items of its time.
    const same = !!curve.comparison;
    const key = same ? "same" : "audit";
    const auditName = same ? "Same audit items (n=" + curve.comparison.n + ")" : "Audit items at the time";
    const series = [];
    for (const b of backbones) {
      const mine = pts.filter((p) => p.backbone === b);
      const color = colorOf(b);
      series.push({
        name: auditName + " · " + b, type: "line", symbolSize: 8, color: color,
        data: mine.filter((p) => p[key] != null).map((p) => [p.n, p[key], p.version, p[key + "_n"] || p.audit_n, p.backbone]),
      });
      series.push(errorBars("audit CI " + b, mine.filter((p) => p[key + "_low"] != null).map((p) => [p.n, p[key + "_low"], p[key + "_high"]]), color));
      series.push({
        name: "Cross-validated · " + b, type: "line", symbol: "diamond", symbolSize: 7,
        color: color, lineStyle: { type: "dashed", opacity: 0.6 }, itemStyle: { opacity: 0.6 },
        data: mine.filter((p) => p.cv != null).map((p) => [p.n, p.cv, p.version, p.backbone]),
      });
      series.push(errorBars("cv CI " + b, mine.filter((p) => p.cv_low != null).map((p) => [p.n + 0.4, p.cv_low, p.cv_high]), color));
    }
    if (curve.random) {
      const rp = curve.random.points;
      series.push({
        name: "Random sampling (measured on audit labels)", type: "line", color: "#888", symbol: "rect",
        symbolSize: 7, data: rp.map((p) => [p.n, p.mean, p.std]),
      });
      series.push(errorBars("random sd", rp.map((p) => [p.n, Math.max(0, p.mean - p.std), Math.min(1, p.mean + p.std)]), "#888"));
      if (curve.random.predicted) {
        series.push({
          name: "Random sampling (power-law extrapolation)", type: "line", color: "#888", showSymbol: false,
          lineStyle: { type: "dotted", width: 2 }, data: curve.random.predicted,
        });
      }
    }
    chart.setOption({
      animation: false,
      grid: { left: 50, right: 20, top: 30 + 22 * Math.ceil((2 * backbones.length + 2) / 3), bottom: 45 },
      legend: { top: 0, data: series.filter((s) => s.type !== "custom").map((s) => s.name) },
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          const v = p.value;
          if (p.seriesName.startsWith(auditName)) return "v" + v[2] + " · " + esc(v[4]) + " · " + v[0] + " labels<br>audit accuracy " + pct(v[1]) + " (n=" + v[3] + ")";
          if (p.seriesName.startsWith("Cross")) return "v" + v[2] + " · " + esc(v[3]) + " · " + v[0] + " labels<br>CV accuracy " + pct(v[1]);
          if (p.seriesName.indexOf("measured") >= 0) return "random, " + v[0] + " labels<br>" + pct(v[1]) + " ± " + pct(v[2]);
          return esc(p.seriesName) + "<br>" + esc(v[0]) + " labels: " + pct(v[1]);
        },
      },
      xAxis: { type: "value", name: "labels", nameLocation: "middle", nameGap: 28, min: 0 },
      yAxis: { type: "value", name: "accuracy", min: function (v) { return Math.max(0, Math.floor(v.min * 10) / 10); }, max: 1,
               axisLabel: { formatter: (v) => Math.round(v * 100) + "%" } },
      series: series,
    });
  }

  function classDistribution() {
    const rows = data.distribution;
    if (!rows || !rows.length) return;
    const chart = make("chart-classes");
    if (!chart) return;
    chart.setOption({
      animation: false,
      grid: { left: 50, right: 20, top: 35, bottom: 60 },
      legend: { top: 0 },
      tooltip: {
        trigger: "axis", axisPointer: { type: "shadow" },
        // Our own plain HTML: ECharts' default axis tooltip uses inline style attributes, which the
        // Content-Security-Policy refuses.
        formatter: (ps) => esc(ps[0].name) + ps.map((p) =>
          "<br>" + esc(p.seriesName) + ": <b>" + p.value + "</b>").join(""),
      },
      xAxis: { type: "category", data: rows.map((r) => r.name), axisLabel: { interval: 0, rotate: rows.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", name: "items" },
      series: [
        { name: "Labeled", type: "bar", data: rows.map((r) => ({ value: r.labeled, itemStyle: { color: r.color } })) },
        { name: "Predicted among unlabeled", type: "bar", color: "#b8c4d6", data: rows.map((r) => r.predicted_unlabeled) },
      ],
    });
  }

  function confusion() {
    const cm = data.confusion;
    if (!cm) return;
    const chart = make("chart-confusion");
    if (!chart) return;
    function draw(which) {
      const matrix = cm[which] || cm.cv;
      const k = cm.classes.length;
      const cells = [];
      for (let i = 0; i < k; i++) {
        const rowSum = matrix[i].reduce((a, b) => a + b, 0) || 1;
        for (let j = 0; j < k; j++) {
          const share = matrix[i][j] / rowSum;
          cells.push({ value: [j, i, share, matrix[i][j]], label: { color: share > 0.5 ? "#fff" : "#111" } });
        }
      }
      chart.setOption({
        animation: false,
        grid: { left: 95, right: 20, top: 10, bottom: 80 },
        tooltip: {
          formatter: (p) => "given <b>" + esc(cm.classes[p.value[1]]) + "</b>, predicted <b>" + esc(cm.classes[p.value[0]]) + "</b><br>" + esc(p.value[3]) + " items (" + pct(p.value[2]) + " of the row)",
        },
        xAxis: { type: "category", data: cm.classes, name: "predicted", nameLocation: "middle", nameGap: 60, axisLabel: { rotate: 40, interval: 0 } },
        yAxis: { type: "category", data: cm.classes, inverse: true, axisLabel: { interval: 0 } },
        visualMap: { show: false, min: 0, max: 1, dimension: 2, inRange: { color: ["#f7fbff", "#6baed6", "#08306b"] } },
        series: [{
          type: "heatmap", data: cells,
          label: { show: k <= 15, formatter: (p) => (p.value[3] ? String(p.value[3]) : ""), fontSize: 12 },
        }],
      }, true);
    }
    draw("cv");
    // A cell opens its images in the item table: given label x out-of-fold prediction.
    chart.on("click", (p) => {
      if (!cm.items_url || !cm.class_ids || !p.value) return;
      const q = new URLSearchParams({ label: cm.class_ids[p.value[1]], oof: cm.class_ids[p.value[0]] });
      const which = document.querySelector("input[name=cm]:checked");
      if (which && which.value === "audit") q.set("audit", "1");
      window.location.assign(cm.items_url + "?" + q.toString());
    });
    document.querySelectorAll("input[name=cm]").forEach((r) => r.addEventListener("change", () => draw(r.value)));
  }

  learningCurve();
  classDistribution();
  confusion();
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  window.labelerCharts = charts; // for tests and debugging
})();
