// Kaiten dashboard page. One websocket carries the views the page shows:
// topics "store" and "gateway" (pushed every second) and "tail/<stream>".
// It reconnects by itself with backoff and shows the last data it had
// meanwhile. No network access beyond the gateway is needed.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "style") e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
    return e;
  };

  // ---- token ----
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    localStorage.setItem("kaitenToken", params.get("token"));
    history.replaceState(null, "", location.pathname + location.hash);
  }
  const token = () => localStorage.getItem("kaitenToken") || "";
  const authHeaders = () => (token() ? { Authorization: "Bearer " + token() } : {});
  async function api(path) {
    const r = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    if (r.status === 401) { showLogin(); throw new Error("unauthorized"); }
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.status === 204 ? null : r.json();
  }
  function showLogin(msg) {
    $("login").hidden = false;
    $("login-err").textContent = msg || "";
    $("login-token").focus();
  }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    localStorage.setItem("kaitenToken", $("login-token").value.trim());
    try { await api("/api/dashboard/auth"); $("login").hidden = true; reconnectNow(); }
    catch (e) { showLogin("That token was not accepted."); }
  });

  // ---- formatting ----
  const nf = new Intl.NumberFormat();
  const num = (n) => (n == null ? "–" : nf.format(n));
  const rate = (n) => (n == null ? "–" : n >= 100 ? nf.format(Math.round(n)) : n.toFixed(1));
  function bytes(n) {
    if (!n) return "0 B";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + u[i];
  }
  function dur(s) {
    if (s == null || s < 0) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(s < 36000 ? 1 : 0) + " h";
    return Math.round(s / 86400) + " d";
  }
  const ago = (s) => (s == null || s < 0 ? "–" : s < 1 ? "just now" : dur(s) + " ago");
  const age = (t) => (t ? ago((Date.now() - Date.parse(t)) / 1000) : "–");
  const shortShard = (id) => id.replace(/^shardId-0*(\d)/, "#$1");
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });

  const typeColors = {
    salmon: "#fa8072", tuna: "#d62839", ebi: "#ff9f1c", tamago: "#ffd23f", unagi: "#a0522d",
    inari: "#c8a165", "kappa-maki": "#3bb273", ikura: "#ff5e3a",
  };
  const palette = ["#4aa3ff", "#b37feb", "#36cfc9", "#f759ab", "#95de64", "#ffc069", "#5cdbd3", "#ff85c0"];
  const colorCache = {};
  function colorOf(name) {
    if (typeColors[name]) return typeColors[name];
    if (!colorCache[name]) colorCache[name] = palette[Object.keys(colorCache).length % palette.length];
    return colorCache[name];
  }

  // ---- charts (uPlot) ----
  function makeChart(host, names, data, opts) {
    const w = Math.max(host.clientWidth, 280);
    const o = {
      width: w, height: opts.height || 280,
      scales: { x: { time: true } },
      axes: [
        { stroke: "#8a99a8", grid: { stroke: "#2a3441" }, ticks: { stroke: "#2a3441" } },
        { stroke: "#8a99a8", grid: { stroke: "#2a3441" }, ticks: { stroke: "#2a3441" }, size: 50 },
      ],
      series: [{}].concat(names.map((n) => ({
        label: n, stroke: colorOf(n), width: 2, points: { show: false },
        fill: opts.fill ? colorOf(n) + "22" : undefined,
      }))),
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    host.textContent = "";
    return new uPlot(o, data, host);
  }
  class Chart {
    constructor(host, opts) { this.host = host; this.opts = opts || {}; this.u = null; this.key = ""; }
    set(names, data) {
      const key = names.join("\u0000");
      if (!this.u || key !== this.key) {
        if (this.u) this.u.destroy();
        this.u = makeChart(this.host, names, data, this.opts);
        this.key = key;
      } else {
        this.u.setData(data);
      }
    }
    resize() { if (this.u) this.u.setSize({ width: Math.max(this.host.clientWidth, 280), height: this.opts.height || 280 }); }
  }
  const passesChart = new Chart($("chart-passes"), { fill: false });
  const rateChart = new Chart($("chart-rate"), { height: 220, fill: true });
  window.addEventListener("resize", () => { passesChart.resize(); rateChart.resize(); });

  // ---- store view ----
  let lastStore = null;
  function renderStore(v) {
    lastStore = v;
    $("store-id").textContent = v.store || "";
    $("kpi-placed").textContent = num(v.placed);
    $("kpi-taken").textContent = num(v.taken);
    $("kpi-passed").textContent = num(v.passed);
    $("kpi-onbelt").textContent = num(v.on_belt);
    $("kpi-ratio").textContent = v.placed ? Math.round((100 * v.taken) / v.placed) + "%" : "–";

    // Make next: what needs making now, then what runs out soonest.
    const mn = $("make-next");
    mn.textContent = "";
    const shown = new Set();
    for (const t of v.make_next.slice(0, 8)) {
      shown.add(t.plate_type);
      mn.append(el("li", { "data-type": t.plate_type, class: "need" },
        el("span", { class: "dot", style: "background:" + colorOf(t.plate_type) }),
        el("span", {}, t.plate_type, el("small", {}, rate(t.take_per_min) + " taken/min · " + t.on_belt + " on belt")),
        el("span", { class: "need" }, "×" + t.need)));
    }
    for (const t of v.running_low) {
      if (mn.children.length >= 6) break;
      if (shown.has(t.plate_type)) continue;
      mn.append(el("li", { "data-type": t.plate_type, class: "low" },
        el("span", { class: "dot", style: "background:" + colorOf(t.plate_type) }),
        el("span", {}, t.plate_type, el("small", {}, rate(t.take_per_min) + " taken/min · " + t.on_belt + " on belt")),
        el("span", { class: "cover" }, dur(t.cover_min * 60))));
    }
    $("make-next-hint").textContent = v.make_next.length
      ? "×N: plates to make so the belt lasts " + dur(v.cover_s) + " at the take rate of the last " + dur(v.rate_window_s) + "."
      : v.running_low.length ? "The belt is stocked for the next " + dur(v.cover_s) + ". Shown: how long each type lasts at its take rate."
      : v.types.length ? "Nothing is being taken right now." : "Waiting for plates…";

    const names = v.types.map((t) => t.plate_type).filter((n) => v.passed_per_minute[n]);
    const data = [v.minutes].concat(names.map((n) => v.passed_per_minute[n]));
    if (currentView === "store") passesChart.set(names, data);

    const lanes = $("lanes");
    lanes.textContent = "";
    for (const l of v.lanes) {
      lanes.append(el("div", { class: "lane" + (l.silent ? " silent" : ""), "data-lane": l.lane },
        el("h3", {}, "Lane " + l.lane),
        el("div", { class: "big" }, rate(l.passed_per_min), el("small", { class: "hint" }, "passing / min")),
        el("div", { class: "row" }, el("span", {}, "on belt"), el("b", {}, num(l.on_belt))),
        el("div", { class: "row" }, el("span", {}, "taken/placed"), el("b", {}, num(l.taken) + " / " + num(l.placed))),
        el("div", { class: "row" }, el("span", {}, "sensors"),
          el("b", { class: l.silent ? "bad" : "" }, l.silent ? l.silent + " of " + l.sensors + " silent" : l.sensors + " ok"))));
    }
    if (!v.lanes.length) lanes.append(el("p", { class: "hint" }, "No lane has reported yet."));

    const tb = $("types-table").tBodies[0];
    tb.textContent = "";
    for (const t of v.types) {
      tb.append(el("tr", { "data-type": t.plate_type },
        el("td", {}, el("span", { class: "dot", style: "background:" + colorOf(t.plate_type) }), " " + t.plate_type),
        el("td", { class: "num" }, num(t.placed)), el("td", { class: "num" }, num(t.taken)),
        el("td", { class: "num" }, num(t.passed)), el("td", { class: "num" }, num(t.on_belt)),
        el("td", { class: "num" }, rate(t.take_per_min))));
    }

    renderResults(v.analytics || []);

    const ss = $("sensors");
    ss.textContent = "";
    for (const s of v.sensors) {
      const cls = s.silent ? "chip bad" : s.ok ? "chip" : "chip warn";
      const what = s.silent ? "silent " + dur(s.age_s) : s.ok ? "ok" : "fault";
      ss.append(el("span", { class: cls, title: "lane " + s.lane + ", last heard " + dur(s.age_s) + " ago" }, s.sensor + " · " + what));
    }
    $("sensors-summary").textContent = v.sensors.length
      ? "(" + v.silent_sensors.length + " silent of " + v.sensors.length + ")" : "";
  }

  // ---- continuous-query results (store view) ----
  // Each query's newest closed window, from its output stream: a grid when
  // the result is two grouping columns and a number (the demo: plate type
  // by lane), a plain table otherwise.
  const cellNum = (x) => (x == null ? "·" : Number.isInteger(x) ? num(x) : rate(x));
  function cellText(c, x) {
    if (x == null) return "–";
    if (typeof x === "number") return cellNum(x);
    if (typeof x === "boolean") return x ? "yes" : "no";
    return String(x);
  }
  function windowText(q) {
    if (!q.window_end) return "";
    const s = q.window_start ? new Date(q.window_start) : null, e = new Date(q.window_end);
    const whole = (!s || s.getSeconds() === 0) && e.getSeconds() === 0 && (!s || s.getMilliseconds() === 0) && e.getMilliseconds() === 0;
    const f = (d) => d.toLocaleTimeString([], whole ? { hour12: false, hour: "2-digit", minute: "2-digit" } : { hour12: false });
    return (s ? f(s) + "–" : "until ") + f(e);
  }
  function label(key, value) {
    return key === "plate_type" ? el("span", { class: "dot", style: "background:" + colorOf(value) }) : "";
  }
  function pivotTable(p) {
    const totals = p.total != null;
    const head = el("tr", {}, el("th", { class: "corner" }, prettyKey(p.row_key) + " / " + prettyKey(p.col_key)),
      ...p.cols.map((c) => el("th", { class: "num", "data-col": c }, p.col_key === "lane" ? el("span", { class: "pre" }, "Lane ") : "", c)),
      totals ? el("th", { class: "num total" }, "All") : "");
    const body = el("tbody");
    p.rows.forEach((r, i) => {
      body.append(el("tr", { "data-row": r },
        el("th", {}, label(p.row_key, r), " " + r),
        ...p.cells[i].map((x, j) => el("td", { class: "num" + (x == null ? " none" : ""), "data-row": r, "data-col": p.cols[j] }, cellNum(x))),
        totals ? el("td", { class: "num total", "data-row-total": r }, cellNum(p.row_totals[i])) : ""));
    });
    if (totals) {
      body.append(el("tr", { class: "totals" }, el("th", {}, "All"),
        ...p.col_totals.map((x, j) => el("td", { class: "num total", "data-col-total": p.cols[j] }, cellNum(x))),
        el("td", { class: "num total", "data-total": "" }, cellNum(p.total))));
    }
    return el("div", { class: "scrollx" }, el("table", { class: "tbl pivot" }, el("thead", {}, head), body));
  }
  function plainTable(q) {
    const t = el("table", { class: "tbl" }, el("thead", {}, el("tr", {}, ...q.columns.map((c) => el("th", {}, prettyKey(c))))));
    const body = el("tbody");
    for (const row of q.rows) {
      body.append(el("tr", {}, ...row.map((x, i) => el("td", { class: typeof x === "number" ? "num" : "", "data-col": q.columns[i] }, cellText(q.columns[i], x)))));
    }
    t.append(body);
    return el("div", { class: "scrollx" }, t);
  }
  function renderResults(qs) {
    const host = $("sql-results");
    host.textContent = "";
    for (const q of qs) {
      const head = el("div", { class: "sqlhead" }, el("b", { class: "qname" }, q.query));
      if (q.window_end) head.append(el("span", { class: "win" }, windowText(q)));
      if (q.state && q.state !== "running") head.append(el("span", { class: unhealthy.test(q.state) ? "chip bad" : "chip warn" }, q.state));
      if (q.millis_behind_latest != null) {
        const s = q.millis_behind_latest / 1000;
        head.append(el("span", { class: "chip lag" + (s > 60 ? " warn" : " dim"), title: "how far the query reads behind its source's newest record" }, "lag " + (s < 1 ? "< 1 s" : dur(s))));
      }
      const box = el("section", { class: "sqlq", "data-query": q.query }, head);
      if (q.error) box.append(el("p", { class: "err" }, q.error));
      if (!q.window_end) {
        box.append(el("p", { class: "hint" }, "Waiting for the first window to close" + (q.window ? " (" + q.window + ")" : "") + "…"));
      } else {
        const sub = q.pivot ? prettyKey(q.pivot.value) + " by " + prettyKey(q.pivot.row_key) + " and " + prettyKey(q.pivot.col_key) : q.rows.length + " results";
        box.append(el("p", { class: "hint sqlsub" }, sub + " · window ended " + ago(q.age_s) + (q.window ? " · " + q.window : "") +
          (q.truncated ? " · " + num(q.truncated) + " more not shown" : "")));
        if (q.pivot) box.append(pivotTable(q.pivot));
        else if (q.rows.length) box.append(plainTable(q));
      }
      host.append(box);
    }
    if (!qs.length) host.append(el("p", { class: "hint" }, "No continuous query has written results yet."));
  }

  // ---- gateway view ----
  const rateHist = { t: [], byStream: {} };
  const RATE_POINTS = 300;
  let rateSeeded = false;
  // The server keeps the last minutes of rates: a page opened now draws
  // them at once.
  async function seedRates() {
    rateSeeded = true;
    try {
      const h = await api("/api/dashboard/rates");
      if (rateHist.t.length && h.t.length && h.t[h.t.length - 1] >= rateHist.t[0]) {
        // keep what arrived live; take the older points from the server
        const cut = h.t.findIndex((x) => x >= rateHist.t[0]);
        h.t = h.t.slice(0, cut);
        for (const n of Object.keys(h.streams)) h.streams[n] = h.streams[n].slice(0, cut);
      }
      const names = new Set([...Object.keys(h.streams), ...Object.keys(rateHist.byStream)]);
      const live = rateHist.t.length;
      for (const n of names) {
        const old = h.streams[n] || new Array(h.t.length).fill(null);
        const cur = rateHist.byStream[n] || new Array(live).fill(null);
        rateHist.byStream[n] = old.concat(cur).slice(-RATE_POINTS);
      }
      rateHist.t = h.t.concat(rateHist.t).slice(-RATE_POINTS);
      drawRates();
    } catch (e) { /* the live points are enough */ }
  }
  let rateNames = [];
  function drawRates() {
    if (currentView !== "gateway" || rateHist.t.length < 2) return;
    rateChart.set(rateNames, [rateHist.t.slice()].concat(rateNames.map((n) => (rateHist.byStream[n] || []).slice())));
  }
  function renderGateway(v) {
    if (!rateSeeded) seedRates();
    $("kpi-rate").textContent = rate(v.per_sec);
    const cap = v.max_bytes || 0;
    $("kpi-storage").textContent = bytes(v.bytes);
    $("kpi-storage-cap").textContent = cap ? "of " + bytes(cap) + " cap (" + Math.round((100 * v.bytes) / cap) + "%)" : "no store-wide cap";
    const pct = cap ? Math.min(100, (100 * v.bytes) / cap) : 0;
    const bar = $("kpi-storage-bar");
    bar.style.width = pct + "%";
    bar.className = pct > 90 ? "bad" : pct > 70 ? "warn" : "";
    $("kpi-disk").textContent = bytes(v.disk_bytes);
    $("kpi-dead").textContent = num(v.deadletters.total);
    $("kpi-clients").textContent = num(v.dashboard.clients);

    // rate history, kept in the page
    const t = Date.parse(v.now) / 1000;
    rateHist.t.push(t);
    const names = v.streams.map((s) => s.name);
    for (const s of v.streams) {
      if (!rateHist.byStream[s.name]) rateHist.byStream[s.name] = new Array(rateHist.t.length - 1).fill(null);
    }
    for (const n of Object.keys(rateHist.byStream)) {
      const s = v.streams.find((x) => x.name === n);
      rateHist.byStream[n].push(s ? s.per_sec : null);
    }
    if (rateHist.t.length > RATE_POINTS) {
      rateHist.t.shift();
      for (const n of Object.keys(rateHist.byStream)) rateHist.byStream[n].shift();
    }
    rateNames = names;
    drawRates();

    const tb = $("streams-table").tBodies[0];
    tb.textContent = "";
    for (const s of v.streams) {
      const newest = Math.min(...s.shards.filter((x) => x.age_s >= 0).map((x) => x.age_s));
      const shards = el("div", { class: "chips" });
      for (const sh of s.shards) {
        shards.append(el("span", { class: sh.open ? "chip dim" : "chip dim", title: sh.shard_id + (sh.open ? "" : " (closed)") + ": " + num(sh.incoming) + " since start" },
          shortShard(sh.shard_id) + " " + rate(sh.per_sec)));
      }
      const capCell = s.max_bytes ? bytes(s.max_bytes) + " (" + Math.round((100 * s.bytes) / s.max_bytes) + "%)" : "–";
      tb.append(el("tr", { "data-stream": s.name },
        el("td", {}, s.name), el("td", { class: "num" }, rate(s.per_sec)), el("td", {}, shards),
        el("td", { class: "num" }, bytes(s.bytes) + " · " + num(s.records) + " rec"), el("td", { class: "num" }, capCell),
        el("td", { class: "num" }, dur(s.retention_s)), el("td", { class: "num" }, isFinite(newest) ? ago(newest) : "empty"),
        el("td", { class: "num" }, num(s.evicted))));
    }

    const comps = $("components");
    comps.textContent = "";
    // delivery and sources first: what the person looking after the
    // gateway checks most; anything else after, by name
    const first = ["sync", "mqtt", "gpio", "sim"];
    const order = (n) => (first.includes(n) ? first.indexOf(n) : first.length);
    const compNames = Object.keys(v.components).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
    for (const name of compNames) {
      const body = renderValue(v.components[name], 0);
      const wide = body instanceof Element && body.querySelector && (body.matches("table.tbl, .entries") || body.querySelector("table.tbl, .entries"));
      comps.append(el("div", { class: "card" + (wide ? " wide" : ""), "data-component": name }, el("h2", {}, name.toUpperCase()), body));
    }

    const dl = v.deadletters;
    $("dead-summary").textContent = Object.keys(dl.last_hour).length
      ? "(last hour: " + Object.entries(dl.last_hour).map(([k, n]) => k + " " + n).join(", ") + ")" : "(none in the last hour)";
    const db = $("dead-table").tBodies[0];
    db.textContent = "";
    for (const d of dl.recent) {
      db.append(el("tr", {}, el("td", {}, clock(d.arrival)), el("td", {}, d.source), el("td", {}, d.topic || ""), el("td", {}, d.reason)));
    }
  }

  // renderValue shows whatever a component published on the status board:
  // objects as key/value tables, lists of objects as tables, booleans
  // named like health as badges.
  const healthy = /^(ok|online|connected|healthy|running|up|active)$/i;
  const unhealthy = /^(offline|error|failed|disconnected|down|stopped)$/i;
  function prettyKey(k) { return String(k).replace(/_/g, " "); }
  function renderScalar(k, v) {
    if (v == null) return el("span", { class: "hint" }, "–");
    if (typeof v === "boolean") {
      const good = /error|fail|offline|throttl|full|stale|down/i.test(k) ? !v : v;
      const word = healthy.test(k) ? (v ? k : "not " + k) : v ? "yes" : "no";
      return el("span", { class: good ? "chip" : "chip bad" }, word);
    }
    if (typeof v === "number") {
      if (/bytes$/i.test(k)) return bytes(v);
      if (/(_s|_sec|_seconds|age|freshness)$/i.test(k)) return dur(v);
      if (/_ms$/i.test(k)) return dur(v / 1000);
      return Number.isInteger(v) ? num(v) : rate(v);
    }
    if (typeof v === "string") {
      // a component saying why it is degraded (a destination's missing table)
      if (/^degraded$/i.test(k) && v) return el("span", { class: "chip bad", title: v }, v.length > 200 ? v.slice(0, 200) + "…" : v);
      if (healthy.test(v)) return el("span", { class: "chip" }, v);
      if (unhealthy.test(v)) return el("span", { class: "chip bad" }, v);
      if (/^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v) && !isNaN(Date.parse(v))) {
        return Date.parse(v) > 0 ? age(v) : "never";
      }
      return v.length > 200 ? v.slice(0, 200) + "…" : v;
    }
    return String(v);
  }
  function renderValue(v, depth, key) {
    if (v === null || typeof v !== "object") return renderScalar(key || "", v);
    if (depth > 3) return el("code", {}, JSON.stringify(v).slice(0, 200));
    if (Array.isArray(v)) {
      if (!v.length) return el("span", { class: "hint" }, "none");
      if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
        const cols = [];
        for (const row of v.slice(0, 50)) for (const c of Object.keys(row)) if (!cols.includes(c)) cols.push(c);
        if (cols.length > 7) {
          // too wide for a table: one key/value block per entry
          const list = el("div", { class: "entries" });
          for (const row of v.slice(0, 20)) list.append(renderValue(row, depth + 1));
          return list;
        }
        const t = el("table", { class: "tbl" }, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, prettyKey(c))))));
        const body = el("tbody");
        for (const row of v.slice(0, depth > 1 ? 8 : 50)) body.append(el("tr", {}, ...cols.map((c) => el("td", {}, renderValue(row[c], depth + 1, c)))));
        t.append(body);
        return t;
      }
      const shown = v.slice(0, 12).map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ");
      return v.length > 12 ? shown + " … (" + v.length + " in all)" : shown;
    }
    const t = el("table", { class: "kv" });
    for (const [k, x] of Object.entries(v)) {
      if (x && typeof x === "object" && (!Array.isArray(x) || x.some((y) => y && typeof y === "object"))) {
        // a nested table gets the card's full width, under its name
        t.append(el("tr", {}, el("td", { colspan: "2", class: "nested" }, el("div", { class: "sub" }, prettyKey(k)), renderValue(x, depth + 1, k))));
      } else {
        t.append(el("tr", {}, el("th", {}, prettyKey(k)), el("td", {}, renderValue(x, depth + 1, k))));
      }
    }
    return t;
  }

  // ---- tail view ----
  let tailStream = localStorage.getItem("kaitenTail") || "";
  let tailPaused = false;
  let tailSeen = 0;
  const TAIL_ROWS = 200;
  async function loadStreams() {
    const names = await api("/api/dashboard/streams");
    const sel = $("tail-stream");
    sel.textContent = "";
    for (const n of names) sel.append(el("option", { value: n }, n));
    if (!names.includes(tailStream)) tailStream = names.includes("plates") ? "plates" : names[0] || "";
    sel.value = tailStream;
  }
  $("tail-stream").addEventListener("change", (e) => {
    tailStream = e.target.value;
    localStorage.setItem("kaitenTail", tailStream);
    $("tail-table").tBodies[0].textContent = "";
    tailSeen = 0;
    subscribe();
  });
  $("tail-pause").addEventListener("click", () => {
    tailPaused = !tailPaused;
    $("tail-pause").textContent = tailPaused ? "Resume" : "Pause";
  });
  $("tail-clear").addEventListener("click", () => { $("tail-table").tBodies[0].textContent = ""; tailSeen = 0; });
  function renderTail(stream, b) {
    if (stream !== tailStream || tailPaused) return;
    const tb = $("tail-table").tBodies[0];
    for (const r of b.records) {
      tailSeen++;
      const tr = el("tr", { class: "new" },
        el("td", {}, clock(r.arrival)), el("td", {}, shortShard(r.shard_id)),
        el("td", {}, r.key), el("td", { title: r.seq }, r.seq.slice(-12)),
        el("td", { class: "data" }, (r.base64 ? "base64:" : "") + r.data + (r.size > 1024 ? " … (" + bytes(r.size) + ")" : "")));
      tb.insertBefore(tr, tb.firstChild);
    }
    while (tb.rows.length > TAIL_ROWS) tb.deleteRow(tb.rows.length - 1);
    $("tail-count").textContent = num(tailSeen) + " records shown" +
      (b.sampled ? " (busy stream: showing a sample of each quarter second)" : b.skipped ? " (" + num(b.skipped) + " more arrived too fast to show)" : "");
  }

  // ---- views and websocket ----
  let currentView = "store";
  function showView() {
    currentView = (location.hash || "#store").slice(1);
    if (!["store", "gateway", "tail"].includes(currentView)) currentView = "store";
    for (const v of ["store", "gateway", "tail"]) $("view-" + v).hidden = v !== currentView;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === currentView);
    document.body.dataset.view = currentView;
    if (currentView === "tail") loadStreams().then(subscribe).catch(() => {});
    else subscribe();
    // charts are sized when visible
    if (currentView === "store" && lastStore) renderStore(lastStore);
    if (currentView === "gateway") drawRates();
    setTimeout(() => { passesChart.resize(); rateChart.resize(); }, 0);
  }
  window.addEventListener("hashchange", showView);

  let ws = null, backoff = 500, retryTimer = null;
  function topics() {
    const t = ["store", "gateway"];
    if (currentView === "tail" && tailStream) t.push("tail/" + tailStream);
    return t;
  }
  function subscribe() {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ subscribe: topics() }));
  }
  function setConn(on, text) {
    const c = $("conn");
    c.className = "conn " + (on ? "on" : "off");
    c.textContent = text;
    document.body.dataset.live = on ? "1" : "0";
  }
  async function connect() {
    retryTimer = null;
    try { await api("/api/dashboard/auth"); } catch (e) {
      if (e.message === "unauthorized") return; // the login form reconnects
      return retry();
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = "?topics=" + encodeURIComponent(topics().join(",")) + (token() ? "&token=" + encodeURIComponent(token()) : "");
    const sock = new WebSocket(proto + "//" + location.host + "/ws" + q);
    ws = sock;
    // topics may have changed while connecting (the tail picker loads)
    sock.onopen = () => { backoff = 500; setConn(true, "live"); subscribe(); };
    sock.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "store") renderStore(m.data);
      else if (m.type === "gateway") renderGateway(m.data);
      else if (m.type === "tail") renderTail(m.stream, m.data);
    };
    sock.onclose = () => { if (ws === sock) { ws = null; retry(); } };
  }
  function retry() {
    setConn(false, "reconnecting…");
    if (retryTimer) return;
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
  function reconnectNow() {
    if (ws) { const s = ws; ws = null; s.close(); }
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    backoff = 500;
    connect();
  }
  // A tablet that slept: reconnect at once when it wakes.
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !ws) reconnectNow(); });

  setConn(false, "connecting…");
  showView();
  connect();
})();
