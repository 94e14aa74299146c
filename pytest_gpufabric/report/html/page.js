// pytest-gpufabric's HTML report: draws the charts from the data inlined in #gf-data with
// uPlot (inlined above). Sizes on a log2 axis, as nccl-tests prints them.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gf-data").textContent);

  function size(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (Math.round(bytes * 10) / 10) + units[i];
  }

  function chart(box, s, kind) {
    var bw = kind === "bandwidth";
    var repeats = [];
    var most = 0;
    s.repeats.forEach(function (r) { most = Math.max(most, r.length); });
    for (var k = 0; k < most; k++) {
      repeats.push(s.repeats.map(function (r) { return k < r.length ? r[k] : null; }));
    }
    var series = [{}, {
      label: bw ? "busbw (median), GB/s" : "time per call, µs",
      stroke: "#1f5fa8", width: 2, points: {size: 7, fill: "#1f5fa8"}
    }, {
      label: bw ? "floor, GB/s" : "ceiling, µs",
      stroke: "#c0392b", width: 2, dash: [6, 4], paths: uPlot.paths.stepped({align: 1}),
      points: {show: false}
    }];
    var columns = [s.sizes, s.median, s.limit];
    if (bw) {
      series.push({label: "warn band top", stroke: "rgba(230,126,34,0.6)", width: 1,
                   paths: uPlot.paths.stepped({align: 1}), points: {show: false}});
      columns.push(s.warn);
    }
    if (bw && s.reference && s.reference.some(function (v) { return v !== null; })) {
      series.push({label: "nccl-tests busbw, GB/s", stroke: "#1e8449", width: 2,
                   spanGaps: true, points: {size: 6, fill: "#1e8449"}});
      columns.push(s.reference);
    }
    repeats.forEach(function (values, k) {
      series.push({label: "loop " + (k + 1), stroke: "rgba(31,95,168,0.45)", width: 0,
                   paths: function () { return null; },
                   points: {show: true, size: 5, stroke: "rgba(31,95,168,0.6)", fill: "#fff"}});
      columns.push(values);
    });
    var opts = {
      title: s.title, width: Math.min(box.clientWidth || 560, 560), height: 300,
      scales: {x: {distr: 3, log: 2}, y: {distr: bw ? 1 : 3, log: 10}},
      axes: [{values: function (u, v) { return v.map(size); }, label: "message size"},
             {label: bw ? "GB/s" : "µs"}],
      series: series,
      bands: bw ? [{series: [3, 2], fill: "rgba(230,126,34,0.15)"}] : []
    };
    var div = document.createElement("div");
    div.className = "chart";
    div.setAttribute("data-title", s.title);
    div.setAttribute("data-series", series.slice(1).map(function (x) { return x.label; }).join("|"));
    box.appendChild(div);
    new uPlot(opts, columns, div);
  }

  Array.prototype.forEach.call(document.querySelectorAll(".charts"), function (box) {
    var kind = box.getAttribute("data-kind");
    (data[kind] || []).forEach(function (s) { chart(box, s, kind); });
  });
  document.body.setAttribute("data-charts", document.querySelectorAll(".uplot").length);
})();
