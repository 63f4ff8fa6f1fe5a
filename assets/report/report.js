// report.html's script, written for the page (runner, MIT OR Apache-2.0); no library, nothing
// fetched. It reads the JSON in <script id="data"> (written by src/report/html.rs) and builds
// the runs table (sort, filter, the constant settings behind a toggle), a run's curves when it
// is clicked, the parallel-coordinates view, and the summary's copy buttons.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const DASH = "\u2014"; // how a missing value is shown
  const runs = D.runs;

  // --- columns -------------------------------------------------------------------------------
  const distinct = (i) => Array.from(new Set(runs.map((r) => r.v[i])));
  // Axis order: numbers ascending with "none" last, words as the sweep lists them.
  const ordered = (values, numeric) =>
    numeric
      ? values.slice().sort((a, b) => (a === "none" ? Infinity : +a) - (b === "none" ? Infinity : +b))
      : values;
  const keyValues = D.keys.map((k, i) => ordered(distinct(i), D.numeric[i]));
  const columns = [{ label: "run_id", get: (r) => r.id }];
  D.keys.forEach((k, i) =>
    columns.push({
      label: k,
      get: (r) => r.v[i],
      numeric: D.numeric[i],
      constant: keyValues[i].length < 2,
    })
  );
  columns.push({ label: "status", get: (r) => r.s });
  D.metrics.forEach((m, j) => {
    if (runs.some((r) => r.m[j] !== null)) columns.push({ label: m, get: (r) => r.m[j], numeric: true, number: true });
  });
  D.constant.forEach(([k, v]) => columns.push({ label: k, get: () => v, constant: true }));
  const nConstant = columns.filter((c) => c.constant).length;
  const missing = (v) => v === null || v === undefined || v === "";
  const show = (v) => (missing(v) ? DASH : String(v));
  const sortKey = (c, v) => (c.numeric ? (v === "none" ? Infinity : +v) : String(v));

  // --- state ---------------------------------------------------------------------------------
  const state = { sort: null, desc: false, selected: null, filters: new Map() };
  const statuses = Array.from(new Set(runs.map((r) => r.s)));
  const filterable = D.keys.map((k, i) => i).filter((i) => keyValues[i].length > 1);
  filterable.forEach((i) => state.filters.set(i, new Set(keyValues[i])));
  state.status = new Set(statuses);
  const kept = () =>
    runs.filter(
      (r) => state.status.has(r.s) && filterable.every((i) => state.filters.get(i).has(r.v[i]))
    );
  const sorted = (list) => {
    if (state.sort === null) return list;
    const c = columns[state.sort];
    const out = list.slice();
    out.sort((a, b) => {
      const x = c.get(a), y = c.get(b);
      if (missing(x) || missing(y)) return missing(x) - missing(y); // missing always last
      const p = sortKey(c, x), q = sortKey(c, y);
      const cmp = p < q ? -1 : p > q ? 1 : 0;
      return state.desc ? -cmp : cmp;
    });
    return out;
  };

  // --- helpers -------------------------------------------------------------------------------
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  };
  const svg = (tag, attrs, ...children) => {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  };
  const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  const viridis = (t) => {
    t = Math.min(1, Math.max(0, isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i;
    const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  };
  const pow10 = (e) => (e >= -3 && e <= 3 ? String(+Math.pow(10, e).toPrecision(3)) : `1e${e}`);
  const short = (v) => (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(3)));
  // Labels over lines stay legible: a white outline under the letters.
  const HALO = { stroke: "#fff", "stroke-width": 4, "paint-order": "stroke" };

  // --- filters and table ---------------------------------------------------------------------
  const filters = document.getElementById("filters");
  const checkbox = (name, value, set, label) => {
    const box = el("input", { type: "checkbox", "data-filter": name, value });
    box.checked = true;
    box.addEventListener("change", () => {
      if (box.checked) set.add(value);
      else set.delete(value);
      render();
    });
    return el("label", {}, box, " " + label);
  };
  filterable.forEach((i) => {
    const f = el("fieldset", {}, el("legend", {}, D.keys[i]));
    keyValues[i].forEach((v) => f.append(checkbox(D.keys[i], v, state.filters.get(i), v)));
    filters.append(f);
  });
  const sf = el("fieldset", {}, el("legend", {}, "status"));
  statuses.forEach((s) =>
    sf.append(checkbox("status", s, state.status, `${s} (${runs.filter((r) => r.s === s).length})`))
  );
  filters.append(sf);
  if (nConstant > 0) {
    const toggle = el("input", { type: "checkbox", id: "show-constant" });
    toggle.addEventListener("change", () => table.classList.toggle("show-constant", toggle.checked));
    filters.append(
      el("label", { for: "show-constant" }, toggle, ` show the ${nConstant} settings constant across the sweep`)
    );
  }

  const table = document.getElementById("runs-table");
  const head = el("thead");
  const headRow = el("tr");
  columns.forEach((c, ci) => {
    const b = el("button", { type: "button" }, c.label);
    b.addEventListener("click", () => {
      state.desc = state.sort === ci ? !state.desc : false;
      state.sort = ci;
      render();
    });
    headRow.append(el("th", { "data-col": c.label, class: c.constant ? "constant" : "" }, b));
  });
  head.append(headRow);
  const body = el("tbody");
  table.append(head, body);

  function render() {
    const list = sorted(kept());
    body.replaceChildren();
    for (const r of list) {
      const tr = el("tr", { "data-run": r.id });
      if (r.id === state.selected) tr.classList.add("selected");
      columns.forEach((c) => {
        const cls = [c.constant ? "constant" : "", c.numeric ? "num" : "", c.label === "status" ? r.s : ""];
        tr.append(el("td", { class: cls.filter(Boolean).join(" ") }, show(c.get(r))));
      });
      tr.addEventListener("click", () => select(r.id));
      body.append(tr);
    }
    headRow.querySelectorAll("th").forEach((th, ci) => {
      if (ci === state.sort) th.setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    document.getElementById("shown").textContent = `${list.length} of ${runs.length} runs shown`;
    parallel(list);
  }

  // --- a run's curves ------------------------------------------------------------------------
  // A small line chart: series of [x, log10 y] points on a log y axis.
  function lineChart(id, title, xLabel, series, hline) {
    const W = 460, H = 260, L = 58, R = 12, T = 26, B = 40;
    const pts = series.flatMap((s) => s.points).filter((p) => p[1] !== null);
    const ys = pts.map((p) => p[1]).concat(hline ? [hline.y] : []);
    const xs = pts.map((p) => p[0]);
    const box = svg("svg", { id, viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
    box.append(svg("text", { x: W / 2, y: 16, "text-anchor": "middle", "font-weight": "600" }, title));
    if (pts.length === 0) {
      box.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "nothing measured"));
      return box;
    }
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
    const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    box.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#999" }));
    // y ticks at powers of ten (every k-th when many).
    const lo = Math.ceil(y0), hi = Math.floor(y1);
    const step = Math.max(1, Math.ceil((hi - lo + 1) / 6));
    for (let e = lo; e <= hi; e += step) {
      box.append(svg("line", { x1: L - 4, x2: W - R, y1: Y(e), y2: Y(e), stroke: "#e3e3e3" }));
      box.append(svg("text", { x: L - 6, y: Y(e) + 4, "text-anchor": "end" }, pow10(e)));
    }
    [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]].forEach(([x, anchor]) =>
      box.append(svg("text", { x: X(x), y: H - B + 16, "text-anchor": anchor }, String(Math.round(x))))
    );
    box.append(svg("text", { x: L + (W - L - R) / 2, y: H - 6, "text-anchor": "middle" }, xLabel));
    if (hline) {
      box.append(svg("line", { x1: L, x2: W - R, y1: Y(hline.y), y2: Y(hline.y), stroke: "#000", "stroke-dasharray": "6 4" }));
      box.append(svg("text", { x: L + 4, y: Y(hline.y) - 4 }, hline.label));
    }
    series.forEach((s, k) => {
      const p = s.points.filter((q) => q[1] !== null);
      if (p.length === 0) return;
      const d = p.map((q, i) => `${i ? "L" : "M"}${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`).join("");
      box.append(svg("path", { d, class: "curve", "data-points": p.length, fill: "none", stroke: s.color,
        "stroke-width": 2, "stroke-dasharray": s.dash || "none" }));
      box.append(svg("text", { x: W - R - 4, y: T + 14 + 14 * k, "text-anchor": "end", fill: s.color }, s.label));
    });
    return box;
  }

  function select(id) {
    state.selected = id;
    const r = runs.find((x) => x.id === id);
    const detail = document.getElementById("detail");
    detail.hidden = false;
    detail.replaceChildren();
    const values = D.keys.map((k, i) => `${k} = ${r.v[i]}`).join(", ");
    detail.append(el("h3", {}, `Run ${r.id}: ${r.s}`), el("p", {}, values || "nothing swept"));
    if (r.err) detail.append(el("p", { class: "failed" }, r.err));
    const baseline = D.baseline > 0 ? { y: Math.log10(D.baseline), label: `baseline ${D.baseline}` } : null;
    const decay = [{ points: r.d0, color: "#7f7f7f", dash: "5 4", label: "at initialisation" }];
    if (r.d1) decay.push({ points: r.d1, color: "#1f77b4", label: `after ${r.last} steps` });
    detail.append(
      el("div", { class: "plots" },
        lineChart("run-loss", "training loss (log scale)", "step", [{ points: r.loss, color: "#d62728", label: "training loss" }], baseline),
        lineChart("run-decay", "‖∂E_T/∂h_{T−d}‖ (log scale)", "distance d", decay, null))
    );
    render();
  }

  // --- parallel coordinates ------------------------------------------------------------------
  function parallel(list) {
    const host = document.getElementById("parcoords");
    const axes = filterable
      .filter((i) => D.keys[i] !== "train.seed")
      .map((i) => ({ label: D.keys[i], values: keyValues[i], get: (r) => r.v[i] }));
    const li = D.metrics.indexOf("final_loss");
    const logs = runs.filter((r) => r.s === "ok" && r.m[li] > 0).map((r) => Math.log10(r.m[li]));
    let [lo, hi] = logs.length ? [Math.min(...logs), Math.max(...logs)] : [-1, 0];
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const W = 940, H = 380, T = 74, B = 336, BAND = 44, L = 70, R = 110;
    const n = axes.length + 1;
    const AX = (k) => (n === 1 ? (L + W - R) / 2 : L + (k * (W - L - R)) / (n - 1));
    const box = svg("svg", { id: "parcoords-svg", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
    box.append(svg("rect", { x: 10, y: BAND - 14, width: W - 20, height: 24, fill: "#fdecea" }));
    box.append(svg("text", { x: 16, y: BAND + 3, fill: "#c62828" }, "diverged / failed: no final loss"));
    const yLoss = (r) => {
      const v = r.m[li];
      if (r.s !== "ok" || !(v > 0)) return BAND - 2;
      return B - ((Math.log10(v) - lo) / (hi - lo)) * (B - T);
    };
    const yKey = (a, v) => {
      const i = a.values.indexOf(v);
      return a.values.length < 2 ? (T + B) / 2 : B - (i / (a.values.length - 1)) * (B - T);
    };
    const labels = []; // drawn after the lines, on top of them
    axes.forEach((a, k) => {
      box.append(svg("line", { x1: AX(k), x2: AX(k), y1: T, y2: B, stroke: "#444" }));
      labels.push(svg("text", { x: AX(k), y: H - 18, "text-anchor": "middle", "font-weight": "600" }, a.label));
      a.values.forEach((v) => labels.push(svg("text", Object.assign({ x: AX(k) - 6, y: yKey(a, v) + 4, "text-anchor": "end" }, HALO), v)));
    });
    const fx = AX(n - 1);
    box.append(svg("line", { x1: fx, x2: fx, y1: T, y2: B, stroke: "#444" }));
    labels.push(svg("text", { x: fx, y: H - 18, "text-anchor": "middle", "font-weight": "600" }, "final loss (log)"));
    // Powers of ten between the ends (every k-th over many decades), and the ends themselves.
    const yOf = (e) => B - ((e - lo) / (hi - lo)) * (B - T);
    const every = Math.max(1, Math.ceil((hi - lo) / 8));
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
      if (e % every !== 0 || yOf(e) > B - 14 || yOf(e) < T + 14) continue;
      labels.push(svg("text", Object.assign({ x: fx + 8, y: yOf(e) + 4 }, HALO), pow10(e)));
    }
    labels.push(svg("text", Object.assign({ x: fx + 8, y: B + 4 }, HALO), short(Math.pow(10, lo))));
    labels.push(svg("text", Object.assign({ x: fx + 8, y: T + 4 }, HALO), short(Math.pow(10, hi))));
    const order = list.slice().sort((a, b) => (a.id === state.selected) - (b.id === state.selected));
    for (const r of order) {
      const ys = axes.map((a) => yKey(a, a.get(r))).concat([yLoss(r)]);
      const pts = ys.map((y, k) => `${AX(k).toFixed(1)},${y.toFixed(1)}`).join(" ");
      const ok = r.s === "ok" && r.m[li] > 0;
      const color = r.id === state.selected ? "#000" : ok ? viridis((Math.log10(r.m[li]) - lo) / (hi - lo)) : "#d62728";
      const line = svg("polyline", { points: n === 1 ? `${AX(0) - 20},${ys[0]} ${AX(0) + 20},${ys[0]}` : pts,
        fill: "none", stroke: color, "stroke-width": r.id === state.selected ? 3 : 1.3, "stroke-opacity": 0.8,
        "stroke-dasharray": ok ? "none" : "4 3", "data-run": r.id, class: r.s });
      line.append(svg("title", {}, `${r.id} ${r.s}`));
      line.addEventListener("click", () => select(r.id));
      box.append(line);
    }
    labels.forEach((l) => box.append(l));
    host.replaceChildren(box);
  }

  // --- copying the summary -------------------------------------------------------------------
  const copied = document.getElementById("copied");
  document.querySelectorAll("button[data-copy]").forEach((b) =>
    b.addEventListener("click", () => {
      const text = D.copy[b.dataset.copy];
      const done = () => { copied.textContent = `copied as ${b.textContent} (${text.length} characters)`; };
      const fallback = () => {
        // No clipboard (a browser's policy): the text selected in a box, ready for Ctrl+C.
        let area = document.getElementById("copy-text");
        if (!area) {
          area = el("textarea", { id: "copy-text", readonly: "" });
          b.parentNode.after(area);
        }
        area.value = text;
        area.select();
        copied.textContent = `${b.textContent} selected below: press Ctrl+C`;
      };
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, fallback);
      else fallback();
    })
  );

  // --- charts stored compressed ----------------------------------------------------------------
  // Large charts are zlib-compressed base64 in data-deflate; the browser's own
  // DecompressionStream unpacks them. <html data-charts="ready"> says every chart is drawn.
  async function unpack(div) {
    const bytes = Uint8Array.from(atob(div.dataset.deflate), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    div.innerHTML = await new Response(stream).text();
    div.removeAttribute("data-deflate");
  }
  const packed = Array.from(document.querySelectorAll("div.packed[data-deflate]"));
  if (typeof DecompressionStream === "function") {
    Promise.all(packed.map(unpack)).then(() => { document.documentElement.dataset.charts = "ready"; });
  } else {
    packed.forEach((d) => { d.textContent = "This browser cannot unpack the chart (no DecompressionStream); open the SVG file named below."; });
    document.documentElement.dataset.charts = "ready";
  }

  render();
})();
