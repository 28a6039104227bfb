// Draws the charts from the page's JSON (the server computes every number; nothing is fetched).
// Each chart links to the ledger rows behind the bar or point that was clicked.
(function () {
  "use strict";
  var node = document.getElementById("charts-data");
  var data = node ? JSON.parse(node.textContent) : {};
  var palette = ["#417690", "#79aec8", "#f5a623", "#7b9e3f", "#b04a5a", "#6a5acd", "#2f9c95", "#c77c02", "#999999"];
  window.dashboardCharts = {};
  // Axis ticks are floats Chart.js added up (0.00005 arrives as 0.000049999999999999996):
  // six significant digits are more than any tick step needs.
  function usdTick(v) { return "$" + Number(v.toPrecision(6)); }

  // Range presets keep every other filter of the URL.
  document.querySelectorAll("a.preset[data-range]").forEach(function (a) {
    var params = new URLSearchParams(window.location.search);
    params.set("range", a.dataset.range); params.delete("start"); params.delete("end"); params.delete("at");
    a.href = "?" + params.toString();
  });
  var form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function () {
      var start = form.querySelector("input[name=start]"), end = form.querySelector("input[name=end]");
      if (start.value && end.value) { form.querySelector("input[name=range]").value = "custom"; }
      else { start.disabled = true; end.disabled = true; }
      form.querySelectorAll("input, select").forEach(function (el) { if (!el.value) { el.disabled = true; } });
    });
  }

  function ledgerLink(extra, label) {
    var url = data.ledger_url + (label ? "&at=" + encodeURIComponent(label) : "");
    if (extra) {
      var p = extra.split("="); var params = new URLSearchParams(url.split("?")[1]);
      params.set(p[0], p.slice(1).join("=")); url = url.split("?")[0] + "?" + params.toString();
    }
    return url;
  }
  function timeAxis() {
    return { type: "time", time: { unit: data.bucket === "hour" ? "hour" : "day", tooltipFormat: data.bucket === "hour" ? "yyyy-MM-dd HH:00" : "yyyy-MM-dd" },
             grid: { display: false } };
  }
  function draw(name, config, onPick) {
    var canvas = document.querySelector("canvas[data-chart='" + name + "']");
    if (!canvas || typeof Chart === "undefined") { return; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "nearest", intersect: true },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } }, config.options || {});
    config.options.onClick = function (evt, elements) {
      if (!elements.length) { return; }
      window.location.href = onPick(elements[0].datasetIndex, elements[0].index);
    };
    config.options.onHover = function (evt, elements) { evt.native.target.style.cursor = elements.length ? "pointer" : "default"; };
    window.dashboardCharts[name] = new Chart(canvas, config);
    canvas.dataset.rendered = "1";
  }

  if (data.spend) {
    draw("spend", {
      type: "bar",
      data: { labels: data.labels, datasets: data.spend.map(function (d, i) {
        return { label: d.label, data: d.data, backgroundColor: palette[i % palette.length], filter: d.filter }; }) },
      options: { scales: { x: Object.assign(timeAxis(), { stacked: true }),
                           y: { stacked: true, beginAtZero: true, ticks: { callback: usdTick } } } }
    }, function (ds, i) { return ledgerLink(data.spend[ds].filter, data.labels[i]); });
  }
  if (data.traffic) {
    draw("traffic", {
      type: "bar",
      data: { labels: data.labels, datasets: [
        { label: "Requests", data: data.traffic.requests, backgroundColor: "#79aec8", yAxisID: "y" },
        { label: "Errors", data: data.traffic.errors, backgroundColor: "#ba2121", yAxisID: "y" },
        { label: "Error rate %", data: data.traffic.error_rate, type: "line", borderColor: "#c77c02", backgroundColor: "#c77c02",
          yAxisID: "rate", spanGaps: false, pointRadius: 2 } ] },
      options: { scales: { x: timeAxis(), y: { beginAtZero: true }, rate: { position: "right", beginAtZero: true, suggestedMax: 10,
                 grid: { display: false }, ticks: { callback: function (v) { return v + "%"; } } } } }
    }, function (ds, i) { return ledgerLink(ds === 0 ? "" : "status=errors", data.labels[i]); });
  }
  if (data.by_model) {
    draw("by_model", {
      type: "bar",
      data: { labels: data.by_model.labels, datasets: [{ label: "Spend (USD)", data: data.by_model.data, backgroundColor: "#417690" }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
                 scales: { x: { beginAtZero: true, ticks: { callback: usdTick } } } }
    }, function (ds, i) { return ledgerLink(data.by_model.filters[i], ""); });
  }
})();
