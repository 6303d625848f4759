// facekit's threshold explorer: reads the JSON that `facekit report` embeds
// (see src/report/explorer.rs) and draws, for the chosen grid threshold, the
// exact error counts, their intervals, markers on small live charts, the
// per-condition FNMR and the faces that fail. No network, no libraries.
(function () {
  "use strict";
  // The SVG namespace, as the HTML parser assigns it (no URL in the page).
  var SVG = (function () {
    var t = document.createElement("template");
    t.innerHTML = "<svg></svg>";
    return t.content.firstChild.namespaceURI;
  })();
  var RATES = [
    { key: "fmr", name: "FMR", of: "impostor", what: "impostor comparisons accepted (verification, 1:1)" },
    { key: "fnmr", name: "FNMR", of: "genuine", what: "genuine comparisons rejected" },
    { key: "fpir", name: "FPIR", of: "non_mated", what: "out-of-DB probes taken for someone in the DB (open set)" },
    { key: "fnir", name: "FNIR", of: "mated", what: "in-DB probes not found first at or above the threshold" }
  ];
  var COLOURS = ["#d95f02", "#1b6ac9", "#b8860b", "#2c9f2c"];

  // The same digits as the report's Rust `percent`: two significant below 10%.
  function percent(rate) {
    var p = rate * 100;
    if (p === 0) return "0%";
    var digits = Math.abs(p) >= 10 ? 1 : Math.min(8, Math.max(1, 1 - Math.floor(Math.log10(Math.abs(p)))));
    var s = p.toFixed(digits);
    if (s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s + "%";
  }
  function thousands(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function distance(cos) {
    return Math.sqrt(Math.max(0, 2 - 2 * cos));
  }
  function cosine(d) {
    return 1 - d * d / 2;
  }
  function node(tag, attrs, text, ns) {
    var e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function metric(tag, name, attrs) {
    attrs = attrs || {};
    attrs["data-metric"] = name;
    return node(tag, attrs);
  }
  function set(e, value, text) {
    e.setAttribute("data-value", String(value));
    e.textContent = text;
  }

  // ------------------------------------------------------------ charts

  function scale(lo, hi, log, a, b) {
    var f = log ? function (v) { return Math.log10(Math.max(v, lo)); } : function (v) { return v; };
    var l = f(lo), h = f(hi);
    return function (v) { return a + (f(v) - l) / (h - l || 1) * (b - a); };
  }
  function decades(lo, hi) {
    var t = [];
    for (var k = Math.floor(Math.log10(lo)); k <= 0; k++) if (Math.pow(10, k) >= lo) t.push(Math.pow(10, k));
    return t;
  }
  function steps(lo, hi) {
    var t = [], step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4 || 1)));
    while ((hi - lo) / step > 6) step *= 2;
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) t.push(+v.toFixed(6));
    return t;
  }
  // An SVG plot with axes; returns the drawing surface and its mappings.
  function plot(title, spec) {
    var W = 330, H = 250, L = 48, R = 10, T = 22, B = 36;
    var svg = node("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, "data-metric": spec.metric }, undefined, SVG);
    svg.appendChild(node("text", { x: W / 2, y: 14, "text-anchor": "middle", "class": "fx-title" }, title, SVG));
    var x = scale(spec.x[0], spec.x[1], spec.xlog, L, W - R);
    var y = scale(spec.y[0], spec.y[1], spec.ylog, H - B, T);
    svg.appendChild(node("rect", { x: L, y: T, width: W - L - R, height: H - T - B, "class": "fx-frame" }, undefined, SVG));
    var xt = spec.xlog ? decades(spec.x[0], spec.x[1]) : steps(spec.x[0], spec.x[1]);
    var yt = spec.ylog ? decades(spec.y[0], spec.y[1]) : steps(spec.y[0], spec.y[1]);
    xt.forEach(function (v) {
      svg.appendChild(node("text", { x: x(v), y: H - B + 13, "text-anchor": "middle" }, spec.xlog ? v.toExponential(0) : String(v), SVG));
    });
    yt.forEach(function (v) {
      svg.appendChild(node("text", { x: L - 3, y: y(v) + 3, "text-anchor": "end" }, spec.ylog ? v.toExponential(0) : String(v), SVG));
    });
    svg.appendChild(node("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, spec.xlabel, SVG));
    svg.appendChild(node("text", { x: 10, y: (T + H - B) / 2, transform: "rotate(-90 10 " + (T + H - B) / 2 + ")", "text-anchor": "middle" }, spec.ylabel, SVG));
    var clip = function (p) {
      return Math.min(Math.max(p, Math.min(spec.x[0], spec.x[1])), Math.max(spec.x[0], spec.x[1]));
    };
    (spec.series || []).forEach(function (s) {
      var d = s.points.map(function (p, i) {
        return (i ? "L" : "M") + x(clip(p[0])).toFixed(1) + " " + y(Math.min(Math.max(p[1], spec.y[0]), spec.y[1])).toFixed(1);
      }).join("");
      svg.appendChild(node("path", { d: d, stroke: s.colour, fill: s.fill ? s.colour : "none", "fill-opacity": s.fill ? 0.3 : null, "stroke-dasharray": s.dash ? "5 3" : null, "class": "fx-line" }, undefined, SVG));
    });
    var legend = (spec.series || []).filter(function (s) { return s.label; });
    legend.forEach(function (s, i) {
      svg.appendChild(node("text", { x: W - R - 4, y: T + 12 + 12 * i, "text-anchor": "end", fill: s.colour }, s.label, SVG));
    });
    return { svg: svg, x: x, y: y, spec: spec, top: T, bottom: H - B };
  }
  function vline(p, at, cls) {
    var l = node("line", { x1: p.x(at), x2: p.x(at), y1: p.top, y2: p.bottom, "class": cls || "fx-marker", "data-metric": "marker", "data-x": at }, undefined, SVG);
    p.svg.appendChild(l);
    return l;
  }
  function dot(p, x, y, colour) {
    var cx = Math.min(Math.max(x, p.spec.x[0]), p.spec.x[1]), cy = Math.min(Math.max(y, p.spec.y[0]), p.spec.y[1]);
    var c = node("circle", { cx: p.x(cx), cy: p.y(cy), r: 5, fill: colour, "class": "fx-dot", "data-metric": "marker", "data-x": x, "data-y": y }, undefined, SVG);
    p.svg.appendChild(c);
    return c;
  }

  // ---------------------------------------------------------- one system

  function Explorer(root, sys) {
    this.root = root;
    this.sys = sys;
    this.page = +root.getAttribute("data-page");
    this.unit = "cosine";
    this.pages = { accepts: 0, rejects: 0, matches: 0, non_matches: 0 };
    this.open = sys.totals.mated + sys.totals.non_mated > 0;
    this.build();
  }

  Explorer.prototype.rate = function (j, k) {
    var of = this.sys.totals[RATES[k].of];
    return of ? this.sys.counts[j][k] / of : 0;
  };

  // The grid index a fragment such as "threshold=0.35" or "fpir=0.01" names.
  Explorer.prototype.indexOf = function (fragment) {
    var m = /^#?(threshold|distance|fmr|fpir)=([-+0-9.eE]+)$/.exec(fragment || "");
    if (!m) return null;
    var v = parseFloat(m[2]), t = this.sys.thresholds, k;
    if (!isFinite(v)) return null;
    if (m[1] === "fmr" || m[1] === "fpir") {
      k = m[1] === "fmr" ? 0 : 2;
      if (!this.sys.totals[RATES[k].of]) return null;
      for (var j = 0; j < t.length; j++) if (this.rate(j, k) <= v) return j;
      return t.length - 1;
    }
    var c = m[1] === "distance" ? cosine(v) : v, best = 0;
    for (var i = 1; i < t.length; i++) if (Math.abs(t[i] - c) < Math.abs(t[best] - c)) best = i;
    return best;
  };

  Explorer.prototype.build = function () {
    var self = this, sys = this.sys, root = this.root, n = sys.thresholds.length;
    var controls = node("div", { "class": "fx-controls" });
    this.slider = node("input", { type: "range", min: 0, max: n - 1, step: 1, "class": "fx-slider", "aria-label": "threshold" });
    this.number = node("input", { type: "number", step: "0.0001", "class": "fx-number", "aria-label": "threshold value" });
    this.unitBox = node("select", { "class": "fx-unit" });
    this.unitBox.appendChild(node("option", { value: "cosine" }, "cosine: accept if ≥"));
    this.unitBox.appendChild(node("option", { value: "distance" }, "distance: accept if ≤"));
    controls.appendChild(node("span", {}, "Threshold "));
    controls.appendChild(this.slider);
    controls.appendChild(this.number);
    controls.appendChild(this.unitBox);
    root.appendChild(controls);

    var readout = node("p", { "class": "fx-readout" });
    this.threshold = metric("b", "threshold");
    this.distance = metric("b", "distance");
    readout.appendChild(document.createTextNode("Accept if cosine ≥ "));
    readout.appendChild(this.threshold);
    readout.appendChild(document.createTextNode(", that is distance ≤ "));
    readout.appendChild(this.distance);
    readout.appendChild(document.createTextNode(" (grid step " + (n - 1) + " of " + n + " thresholds)."));
    this.position = readout.lastChild;
    root.appendChild(readout);

    var table = node("table", { "class": "fx-rates" });
    var head = node("tr");
    ["rate", "value", "count", "of", "95% interval", "what"].forEach(function (h, i) {
      head.appendChild(node("th", { "class": i === 0 || i === 5 ? "l" : null }, h));
    });
    table.appendChild(head);
    this.cells = RATES.map(function (r) {
      var tr = node("tr");
      if (!sys.totals[r.of]) tr.className = "fx-absent";
      var c = { value: metric("td", r.key), count: metric("td", r.key + "_count"), total: metric("td", r.key + "_total"), ci: metric("td", r.key + "_ci95") };
      tr.appendChild(node("td", { "class": "l" }, r.name));
      tr.appendChild(c.value);
      tr.appendChild(c.count);
      tr.appendChild(c.total);
      tr.appendChild(c.ci);
      tr.appendChild(node("td", { "class": "l" }, r.what));
      table.appendChild(tr);
      return c;
    });
    root.appendChild(table);

    this.charts = node("div", { "class": "fx-charts" });
    root.appendChild(this.charts);
    this.drawCharts();

    this.groups = node("div", { "class": "fx-groups" });
    root.appendChild(this.groups);
    this.buildGroups();

    this.faces = node("div", { "class": "fx-faces" });
    root.appendChild(this.faces);

    var cmd = node("p", { "class": "fx-command" });
    cmd.appendChild(node("span", {}, "Use this threshold: "));
    this.command = metric("code", "command");
    cmd.appendChild(this.command);
    root.appendChild(cmd);

    this.slider.addEventListener("input", function () {
      var v = +self.slider.value;
      self.show(self.unit === "cosine" ? v : n - 1 - v, true);
    });
    this.number.addEventListener("change", function () {
      var v = parseFloat(self.number.value);
      if (isFinite(v)) self.show(self.indexOf((self.unit === "cosine" ? "threshold=" : "distance=") + v), true);
    });
    this.unitBox.addEventListener("change", function () {
      self.unit = self.unitBox.value;
      self.show(self.j, false);
    });
  };

  Explorer.prototype.drawCharts = function () {
    var sys = this.sys, t = sys.thresholds, self = this;
    var kinds = this.open ? [0, 1, 2, 3] : [0, 1];
    var minRate = 1;
    kinds.forEach(function (k) {
      var of = sys.totals[RATES[k].of];
      if (of) minRate = Math.min(minRate, 1 / of);
    });
    var ylo = Math.pow(10, Math.floor(Math.log10(minRate)));
    // Tuning: from where the false-accept rates fall below 1/2 to where
    // the miss rates pass 1/2.
    var lo = t.length - 1, hi = 0;
    for (var j = 0; j < t.length; j++) {
      if (this.rate(j, 0) <= 0.5 || (this.open && this.rate(j, 2) <= 0.5)) lo = Math.min(lo, j);
      if (this.rate(j, 1) <= 0.5 || (this.open && this.rate(j, 3) <= 0.5)) hi = Math.max(hi, j);
    }
    if (hi <= lo) { lo = 0; hi = t.length - 1; }
    var pad = (t[hi] - t[lo]) * 0.08 || 0.05;
    var series = kinds.map(function (k) {
      var pts = [];
      for (var j = 0; j < t.length; j++) {
        var r = self.rate(j, k);
        if (r > 0) pts.push([t[j], r]);
      }
      return { points: pts, colour: COLOURS[k], dash: k % 2 === 0, label: RATES[k].name };
    });
    this.tuning = plot("Threshold tuning", {
      metric: "chart-tuning", x: [t[lo] - pad, t[hi] + pad], y: [ylo, 1], ylog: true,
      xlabel: "threshold (cosine)", ylabel: "error rate", series: series
    });
    this.tuningLine = vline(this.tuning, t[0]);
    this.tuningDots = kinds.map(function (k) { return dot(self.tuning, t[0], 1, COLOURS[k]); });
    this.charts.appendChild(this.tuning.svg);

    var curve = function (a, b) {
      var pts = [];
      for (var j = 0; j < t.length; j++) {
        var x = self.rate(j, a), y = self.rate(j, b);
        if (x > 0 && y > 0) pts.push([x, y]);
      }
      return pts;
    };
    var detSeries = [{ points: curve(0, 1), colour: COLOURS[1], label: "FNMR vs FMR" }];
    if (this.open) detSeries.push({ points: curve(2, 3), colour: COLOURS[3], label: "FNIR vs FPIR" });
    this.det = plot("DET (both axes log)", {
      metric: "chart-det", x: [ylo, 1], y: [ylo, 1], xlog: true, ylog: true,
      xlabel: "false accepts: FMR, FPIR", ylabel: "misses: FNMR, FNIR", series: detSeries
    });
    this.detDots = [dot(this.det, 1, 1, COLOURS[1])];
    if (this.open) this.detDots.push(dot(this.det, 1, 1, COLOURS[3]));
    this.charts.appendChild(this.det.svg);

    var d = sys.distribution;
    if (d) {
      var step = (d.hi - d.lo) / d.mated.length, top = 0;
      var outline = function (shares) {
        var pts = [[d.lo, 0]];
        shares.forEach(function (s, i) {
          pts.push([d.lo + i * step, s]);
          pts.push([d.lo + (i + 1) * step, s]);
          top = Math.max(top, s);
        });
        pts.push([d.hi, 0]);
        return pts;
      };
      var nm = outline(d.non_mated), m = outline(d.mated);
      this.dist = plot("In-DB vs out-of-DB: nearest gallery score", {
        metric: "chart-distribution", x: [d.lo, d.hi], y: [0, top * 1.1 || 1],
        xlabel: "cosine to the nearest gallery face", ylabel: "share",
        series: [
          { points: nm, colour: COLOURS[0], fill: true, label: "out-of-DB" },
          { points: m, colour: COLOURS[1], fill: true, label: "in-DB" }
        ]
      });
      this.distLine = vline(this.dist, d.lo);
      this.charts.appendChild(this.dist.svg);
    }
  };

  Explorer.prototype.buildGroups = function () {
    var self = this;
    this.groupCells = [];
    this.sys.groups.forEach(function (g, gi) {
      self.groups.appendChild(node("h4", {}, "FNMR by " + g.columns.join(" × ") + " at this threshold"));
      var table = node("table", { "class": "fx-heat" });
      var two = g.columns.length === 2;
      var cols = two ? g.cols : g.rows;
      var rows = two ? g.rows : [""];
      var head = node("tr");
      head.appendChild(node("th", { "class": "l" }, two ? g.columns[0] + " \\ " + g.columns[1] : g.columns[0]));
      cols.forEach(function (c) { head.appendChild(node("th", {}, c)); });
      table.appendChild(head);
      var cells = [];
      rows.forEach(function (r) {
        var tr = node("tr");
        tr.appendChild(node("th", { "class": "l" }, two ? r : "FNMR"));
        cols.forEach(function (c) {
          var values = two ? [r, c] : [c];
          var cell = g.cells.filter(function (x) { return JSON.stringify(x.values) === JSON.stringify(values); })[0];
          var td = cell
            ? metric("td", "group_fnmr", { "data-group": g.columns.join("+"), "data-values": JSON.stringify(values), "data-total": cell.genuine })
            : node("td", { "class": "fx-empty" }, "–");
          tr.appendChild(td);
          if (cell) cells.push({ td: td, cell: cell });
        });
        table.appendChild(tr);
      });
      self.groups.appendChild(table);
      self.groupCells[gi] = cells;
    });
  };

  Explorer.prototype.showGroups = function (j) {
    this.groupCells.forEach(function (cells) {
      var rates = cells.map(function (c) {
        var below = 0;
        c.cell.steps.forEach(function (s) { if (s[0] <= j) below += s[1]; });
        return { c: c, below: below, rate: c.cell.genuine ? below / c.cell.genuine : 0 };
      });
      var max = rates.reduce(function (m, r) { return Math.max(m, r.rate); }, 0) || 1;
      rates.forEach(function (r) {
        r.c.td.setAttribute("data-count", String(r.below));
        set(r.c.td, r.rate, percent(r.rate));
        r.c.td.style.background = "rgba(200, 40, 40, " + (0.85 * r.rate / max).toFixed(3) + ")";
        r.c.td.title = thousands(r.below) + " of " + thousands(r.c.cell.genuine) + " genuine comparisons rejected";
      });
    });
  };

  Explorer.prototype.showFaces = function (j) {
    var self = this, sys = this.sys, t = sys.thresholds[j];
    this.faces.textContent = "";
    if (!sys.faces.length) return;
    // One panel per kind of example present; each lists the examples that
    // are errors at this threshold (accept if score >= threshold), worst
    // first, as examples.csv orders them.
    var kinds = [
      {
        kind: "non_mated_probe", key: "accepts", item: "false_accept", count: sys.counts[j][2],
        title: "False accepts: out-of-DB probes taken for someone in the DB",
        error: function (f) { return f.score >= t; },
        caption: function (f) { return f.identity + " → " + f.gallery_identity; }
      },
      {
        kind: "mated_probe", key: "rejects", item: "false_reject", count: sys.counts[j][3],
        title: "False rejects: in-DB probes missed",
        error: function (f) { return !(f.mate_rank === 1 && f.score >= t); },
        caption: function (f) { return f.identity + " (mate rank " + (f.mate_rank === null ? "–" : f.mate_rank) + ")"; }
      },
      {
        kind: "impostor_pair", key: "matches", item: "false_match", count: sys.counts[j][0],
        title: "False matches: pairs of two people accepted as one (verification)",
        error: function (f) { return f.score >= t; },
        caption: function (f) { return f.identity + " ≈ " + f.gallery_identity; }
      },
      {
        kind: "genuine_pair", key: "non_matches", item: "false_non_match", count: sys.counts[j][1],
        title: "False non-matches: pairs of one person rejected (verification)",
        error: function (f) { return f.score < t; },
        caption: function (f) { return f.identity + " ≠ itself"; }
      }
    ];
    var panels = kinds.filter(function (k) {
      return sys.faces.some(function (f) { return f.kind === k.kind; });
    }).map(function (k) {
      k.list = sys.faces.filter(function (f) { return f.kind === k.kind && k.error(f); });
      return k;
    });
    var missing = false;
    panels.forEach(function (p) {
      var sec = metric("section", "false_" + p.key, { "class": "fx-panel" });
      sec.appendChild(node("h4", {}, p.title));
      var pages = Math.max(1, Math.ceil(p.list.length / self.page));
      var at = Math.min(self.pages[p.key], pages - 1);
      self.pages[p.key] = at;
      var first = at * self.page, shown = p.list.slice(first, first + self.page);
      var info = node("p", { "class": "muted" });
      var total = metric("b", "false_" + p.key + "_count");
      set(total, p.count, thousands(p.count));
      info.appendChild(total);
      info.appendChild(document.createTextNode(" at this threshold, worst first; " +
        (p.list.length ? "showing " + (first + 1) + "–" + (first + shown.length) + " of the " + p.list.length + " kept in examples.csv." : "none among those kept in examples.csv.")));
      sec.appendChild(info);
      var grid = node("div", { "class": "fx-grid" });
      shown.forEach(function (f) {
        var fig = metric("figure", p.item, { "class": "fx-face", "data-identity": f.identity, "data-path": f.path, "data-score": f.score });
        [[f.image, f.path, f.identity], [f.gallery_image, f.gallery_path, f.gallery_identity]].forEach(function (im) {
          if (im[0] !== null && im[0] !== undefined) {
            fig.appendChild(node("img", { src: sys.images[im[0]], alt: im[2], title: im[1], width: 64, height: 64 }));
          } else {
            missing = true;
            fig.appendChild(node("span", { "class": "fx-noimg", title: im[1] }, "no image"));
          }
        });
        var cap = node("figcaption");
        cap.appendChild(node("span", {}, p.caption(f)));
        cap.appendChild(node("br"));
        cap.appendChild(node("span", {}, "cos " + f.score.toFixed(4) + " · d " + distance(f.score).toFixed(4)));
        fig.appendChild(cap);
        grid.appendChild(fig);
      });
      sec.appendChild(grid);
      if (pages > 1) {
        var nav = node("p", { "class": "fx-pager" });
        var prev = node("button", { type: "button" }, "◀ worse"), next = node("button", { type: "button" }, "milder ▶");
        prev.disabled = at === 0;
        next.disabled = at >= pages - 1;
        prev.addEventListener("click", function () { self.pages[p.key]--; self.showFaces(self.j); });
        next.addEventListener("click", function () { self.pages[p.key]++; self.showFaces(self.j); });
        nav.appendChild(prev);
        nav.appendChild(node("span", {}, " page " + (at + 1) + " of " + pages + " "));
        nav.appendChild(next);
        sec.appendChild(nav);
      }
      self.faces.appendChild(sec);
    });
    if (missing) {
      this.faces.appendChild(node("p", { "class": "muted" }, "Images marked \"no image\" were not found under " +
        sys.image_root + " (the paths in the labels are relative to it); pass --images DIR to facekit report. Hover for the path."));
    }
  };

  Explorer.prototype.show = function (j, share) {
    if (j === null || j === undefined) return;
    var sys = this.sys, n = sys.thresholds.length, t = sys.thresholds[j], self = this;
    this.j = j;
    this.slider.value = this.unit === "cosine" ? j : n - 1 - j;
    this.number.value = (this.unit === "cosine" ? t : distance(t)).toFixed(4);
    set(this.threshold, t, t.toFixed(4));
    set(this.distance, distance(t), distance(t).toFixed(4));
    this.position.textContent = " (grid threshold " + (j + 1) + " of " + n + ").";
    RATES.forEach(function (r, k) {
      var c = self.cells[k], of = sys.totals[r.of], count = sys.counts[j][k];
      var rate = of ? count / of : 0, ci = sys.intervals[j];
      set(c.value, rate, of ? percent(rate) : "–");
      set(c.count, count, thousands(count));
      set(c.total, of, thousands(of));
      c.ci.setAttribute("data-low", String(ci[2 * k]));
      c.ci.setAttribute("data-high", String(ci[2 * k + 1]));
      c.ci.textContent = of ? "[" + percent(ci[2 * k]) + ", " + percent(ci[2 * k + 1]) + "]" : "–";
    });
    var move = function (line, p, x) {
      line.setAttribute("x1", p.x(x));
      line.setAttribute("x2", p.x(x));
      line.setAttribute("data-x", String(x));
    };
    var place = function (c, p, x, y) {
      var cx = Math.min(Math.max(x, p.spec.x[0]), p.spec.x[1]), cy = Math.min(Math.max(y, p.spec.y[0]), p.spec.y[1]);
      c.setAttribute("cx", p.x(cx));
      c.setAttribute("cy", p.y(cy));
      c.setAttribute("data-x", String(x));
      c.setAttribute("data-y", String(y));
    };
    var tx = Math.min(Math.max(t, this.tuning.spec.x[0]), this.tuning.spec.x[1]);
    move(this.tuningLine, this.tuning, tx);
    this.tuningLine.setAttribute("data-x", String(t));
    this.tuningDots.forEach(function (d, k) { place(d, self.tuning, tx, self.rate(j, k)); d.setAttribute("data-x", String(t)); });
    place(this.detDots[0], this.det, this.rate(j, 0), this.rate(j, 1));
    if (this.open) place(this.detDots[1], this.det, this.rate(j, 2), this.rate(j, 3));
    if (this.dist) {
      move(this.distLine, this.dist, Math.min(Math.max(t, sys.distribution.lo), sys.distribution.hi));
      this.distLine.setAttribute("data-x", String(t));
    }
    this.showGroups(j);
    this.showFaces(j);
    set(this.command, t, sys.search + " " + t);
    if (share && window.history && history.replaceState) history.replaceState(null, "", "#threshold=" + t);
  };

  Explorer.prototype.start = function () {
    var j = this.indexOf(location.hash);
    this.show(j === null ? this.indexOf(this.sys.start) || 0 : j, false);
  };

  var data = JSON.parse(document.getElementById("fx-data").textContent);
  var explorers = [];
  Array.prototype.forEach.call(document.querySelectorAll(".fx"), function (root) {
    var sys = data[+root.getAttribute("data-system")];
    if (sys) explorers.push(new Explorer(root, sys));
  });
  explorers.forEach(function (e) { e.start(); });
  window.addEventListener("hashchange", function () {
    explorers.forEach(function (e) {
      var j = e.indexOf(location.hash);
      if (j !== null && j !== e.j) e.show(j, false);
    });
  });
})();
