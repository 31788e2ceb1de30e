/* conveyor dashboard: the throughput chart and a select-all checkbox.
   Loaded as a file (the Content-Security-Policy allows no inline script). Everything else
   works without JavaScript; htmx (vendored) refreshes the live parts of the pages. */
(function () {
  "use strict";

  function readCss(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name);
    return value ? value.trim() : fallback;
  }

  function setupChart(el) {
    if (typeof window.uPlot !== "function") {
      return;
    }
    var src = el.getAttribute("data-src");
    var every = parseInt(el.getAttribute("data-refresh") || "3000", 10);
    var plot = null;
    var accent = readCss("--accent", "#4f46e5");
    var danger = readCss("--danger", "#c81e1e");

    function options(width) {
      return {
        width: width,
        height: 240,
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, max * 1.15)]; } } },
        series: [
          {},
          { label: "processed", stroke: accent, width: 2, fill: "rgba(79, 70, 229, 0.10)", points: { show: false } },
          { label: "failed", stroke: danger, width: 2, fill: "rgba(200, 30, 30, 0.08)", points: { show: false } }
        ],
        axes: [
          { stroke: "#6b7385", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6eb" } },
          { stroke: "#6b7385", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6eb" }, size: 50 }
        ]
      };
    }

    function draw(payload) {
      var h = payload.history;
      var data = [h.t, h.processed, h.failed];
      if (plot === null) {
        el.textContent = "";
        plot = new window.uPlot(options(Math.max(300, el.clientWidth)), data, el);
      } else {
        plot.setData(data);
      }
    }

    function load() {
      fetch(src, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (payload) { if (payload && payload.history) { draw(payload); } })
        .catch(function () { /* the next tick tries again */ });
    }

    load();
    window.setInterval(function () {
      if (!document.hidden) { load(); }
    }, Math.max(1000, every));
    window.addEventListener("resize", function () {
      if (plot !== null) { plot.setSize({ width: Math.max(300, el.clientWidth), height: 240 }); }
    });
  }

  function setupSelectAll(box) {
    var name = box.getAttribute("data-select-all");
    var form = box.form;
    if (!form) { return; }
    box.addEventListener("change", function () {
      var boxes = form.querySelectorAll('input[type="checkbox"][name="' + name + '"]');
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = box.checked; }
    });
  }

  function init() {
    var chart = document.getElementById("chart");
    if (chart) { setupChart(chart); }
    var boxes = document.querySelectorAll("input[data-select-all]");
    for (var i = 0; i < boxes.length; i++) { setupSelectAll(boxes[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
