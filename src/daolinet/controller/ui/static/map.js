// daolinet live map: hosts as boxes with their containers, live hot-plug routes as edges.
// Vanilla JavaScript and SVG, no third-party code.  Data comes from the controller's API
// with the token kept in this tab's sessionStorage (or a TLS client certificate):
//   GET /ui/stream            Server-Sent Events read with fetch(): snapshot, then deltas
//   GET /ui/containers/{id}   a container's identity, routes with counters, groups, rules
//   POST /trace               the trace form
// Timings for tests and benchmarks: performance measures "ui-first-render" (navigation
// to the first snapshot drawn) and "ui-delta" (one pushed update applied and laid out).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const CELL_W = 124, CELL_H = 38, PAD = 10, HEAD = 24, GAP = 16, MAX_COLS = 8;
const KEY = "daolinet-token";
const CALM = 50;  // changes in one update up to which edges are animated
const S = { hosts: new Map(), eps: new Map(), routes: new Map(), me: null, selected: null,
            dirty: false, zoom: 1, width: 0, height: 0, firstDone: false, abort: null, asked: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(KEY);
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(body ? { "Content-Type": "application/json" } : {}),
                                body: body ? JSON.stringify(body) : undefined });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { signIn(data.error || "sign in"); throw new Error(data.error || "unauthorized"); }
  if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "status " + (cls || ""); }

// -- the model --------------------------------------------------------------------------

function host(name) {
  let h = S.hosts.get(name);
  if (!h) {
    const g = el("svg:g", { class: "host", "data-host": name });
    const rect = el("svg:rect", { rx: 6 });
    g.append(rect, el("svg:text", { x: PAD, y: 16 }, name));
    h = { name, info: { name, alive: true }, g, rect, members: new Set(), x: 0, y: 0 };
    S.hosts.set(name, h);
    $("hosts").append(g);
  }
  return h;
}

function setHost(info) {
  const h = host(info.name);
  h.info = info;
  h.g.classList.toggle("down", info.alive === false);
  const title = [info.name, info.underlay_ip, info.dpid, info.alive === false ? "DOWN" : ""].filter(Boolean);
  h.g.querySelector("text").textContent = title.join("  ");
}

function setEndpoint(d) {
  let e = S.eps.get(d.id);
  if (e && e.data.host !== d.host) { dropEndpoint(d.id); e = null; }
  if (!e) {
    const g = el("svg:g", { class: "ctr", "data-id": d.id, "data-name": d.name, tabindex: 0 });
    g.append(el("svg:rect", { width: CELL_W - 8, height: CELL_H - 6, rx: 4 }),
             el("svg:text", { x: 6, y: 14 }), el("svg:text", { x: 6, y: 27, class: "ip" }));
    g.addEventListener("click", () => select(d.id));
    e = { data: d, g, x: 0, y: 0 };
    S.eps.set(d.id, e);
    const h = host(d.host);
    h.members.add(d.id);
    h.g.append(g);
  }
  e.data = d;
  const [name, ip] = e.g.querySelectorAll("text");
  name.textContent = d.name + (S.me && S.me.admin ? "  (" + d.tenant + ")" : "");
  ip.textContent = d.ip + " · " + d.pip;
}

function dropEndpoint(id) {
  const e = S.eps.get(id);
  if (!e) return;
  e.g.remove();
  S.eps.delete(id);
  const h = S.hosts.get(e.data.host);
  if (h) {
    h.members.delete(id);
    if (h.members.size === 0 && !(S.me && S.me.admin)) { h.g.remove(); S.hosts.delete(h.name); }
  }
}

// calm: few changes at once, so they are animated (plugged: a flash; gone: a fade); under heavy
// churn the edges change without animation, so a thousand changes a second keep the page fluid
function setRoute(d, calm) {
  let r = S.routes.get(d.id);
  if (r && r.gone) { r.path.remove(); r = null; }
  if (!r) {
    const cls = "edge" + (d.same_host ? " same" : "") + (calm === false ? " quiet" : "");
    const path = el("svg:path", { class: cls, "data-route": d.id,
                                  "data-a": d.a, "data-b": d.b, "data-live": "1" });
    r = { data: d, path, gone: false };
    S.routes.set(d.id, r);
    $("edges").append(path);
  }
  r.data = d;
  r.path.setAttribute("data-names", d.names.join(" "));
  if (S.selected !== null) r.path.classList.toggle("hot", d.a === S.selected || d.b === S.selected);
  drawEdge(r);
}

function dropRoute(id, calm) {
  const r = S.routes.get(id);
  if (!r || r.gone) return;
  if (!calm) { r.path.remove(); S.routes.delete(id); return; }
  r.gone = true;
  r.path.setAttribute("data-live", "0");
  r.path.classList.add("gone");  // fades out (map.css), then leaves
  setTimeout(() => { if (S.routes.get(id) === r) { r.path.remove(); S.routes.delete(id); } }, 1600);
}

function centre(id) {
  const e = S.eps.get(id);
  if (!e) return null;
  const h = S.hosts.get(e.data.host);
  return [h.x + e.x + (CELL_W - 8) / 2, h.y + e.y + (CELL_H - 6) / 2];
}

function drawEdge(r) {
  const a = centre(r.data.a), b = centre(r.data.b);
  if (!a || !b) { r.path.setAttribute("d", ""); return; }
  const mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2, dx = b[0] - a[0], dy = b[1] - a[1];
  const len = Math.hypot(dx, dy) || 1, bend = Math.min(60, len / 4);  // curve: pairs stay apart
  r.path.setAttribute("d", `M${a[0]},${a[1]} Q${mx - dy / len * bend},${my + dx / len * bend} ${b[0]},${b[1]}`);
}

// -- layout: hosts flow left to right, containers in a grid inside each ------------------

function layout() {
  S.dirty = false;
  const avail = Math.max(600, $("mapwrap").clientWidth / S.zoom - GAP);
  let x = GAP, y = GAP, rowH = 0, maxW = 0;
  const names = [...S.hosts.keys()].sort();
  for (const name of names) {
    const h = S.hosts.get(name);
    const ids = [...h.members].sort((p, q) => S.eps.get(p).data.name.localeCompare(S.eps.get(q).data.name));
    const cols = Math.max(2, Math.min(MAX_COLS, Math.ceil(Math.sqrt(ids.length))));
    const rows = Math.max(1, Math.ceil(ids.length / cols));
    const w = cols * CELL_W + 2 * PAD, hh = HEAD + rows * CELL_H + PAD;
    if (x + w > avail && x > GAP) { x = GAP; y += rowH + GAP; rowH = 0; }
    h.x = x; h.y = y;
    h.g.setAttribute("transform", `translate(${x},${y})`);
    h.rect.setAttribute("width", w); h.rect.setAttribute("height", hh);
    ids.forEach((id, i) => {
      const e = S.eps.get(id);
      e.x = PAD + (i % cols) * CELL_W; e.y = HEAD + Math.floor(i / cols) * CELL_H;
      e.g.setAttribute("transform", `translate(${e.x},${e.y})`);
    });
    x += w + GAP; rowH = Math.max(rowH, hh); maxW = Math.max(maxW, x);
  }
  S.width = maxW + GAP; S.height = y + rowH + GAP;
  zoom();
  for (const r of S.routes.values()) drawEdge(r);
}

function zoom() {
  const svg = $("map");
  svg.setAttribute("viewBox", `0 0 ${S.width} ${S.height}`);
  svg.setAttribute("width", S.width * S.zoom);
  svg.setAttribute("height", S.height * S.zoom);
}

function counts() {
  let live = 0;
  for (const r of S.routes.values()) if (!r.gone) live++;
  $("counts").textContent = `${S.hosts.size} hosts · ${S.eps.size} containers · ${live} live routes`;
}

// -- the stream ---------------------------------------------------------------------------

function applySnapshot(d) {
  S.me = d.me;
  $("who").textContent = d.me.admin ? `${d.me.name} (admin)` : `${d.me.name} (tenant ${d.me.tenant})`;
  if (!$("t-tenant").value) $("t-tenant").value = d.me.tenant || "default";
  for (const r of S.routes.values()) r.path.remove();
  S.routes.clear(); S.eps.clear(); S.hosts.clear();
  $("hosts").replaceChildren(); $("edges").replaceChildren();
  for (const h of d.hosts) setHost(h);
  for (const e of d.endpoints) setEndpoint(e);
  layout();
  for (const r of d.routes) setRoute(r, false);
  counts();
  if (!S.firstDone) {
    S.firstDone = true;
    performance.measure("ui-first-render", { start: 0, end: performance.now() });
  }
}

function applyDelta(events) {
  const t0 = performance.now();
  const calm = events.length <= CALM;
  let relayout = false;
  for (const ev of events) {
    if (ev.op === "route") ev.live ? setRoute(ev, calm) : dropRoute(ev.id, calm);
    else if (ev.op === "endpoint") {
      relayout = true;
      if (ev.live) setEndpoint(ev); else dropEndpoint(ev.id);
      if (ev.id === S.selected && !ev.live) S.selected = null;
    } else if (ev.op === "host") {
      relayout = true;
      if (ev.live) setHost(ev); else if (S.hosts.has(ev.name) && !S.hosts.get(ev.name).members.size) {
        S.hosts.get(ev.name).g.remove(); S.hosts.delete(ev.name);
      }
    }
  }
  if (relayout) layout();
  counts();
  performance.measure("ui-delta", { start: t0, end: performance.now(), detail: events.length });
  if (performance.getEntriesByName("ui-delta").length > 5000) performance.clearMeasures("ui-delta");
}

function onBlock(block) {
  let kind = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;  // a keep-alive comment
  const d = JSON.parse(data);
  if (kind === "snapshot") applySnapshot(d); else if (kind === "delta") applyDelta(d);
}

async function stream() {
  if (S.abort) S.abort.abort();
  const ctl = new AbortController();
  S.abort = ctl;
  let r;
  try {
    r = await fetch("/ui/stream", { headers: headers(), signal: ctl.signal });
  } catch (err) {
    if (ctl.signal.aborted) return;
    setStatus("disconnected: retrying", "down");
    setTimeout(stream, 2000);
    return;
  }
  if (r.status === 401 || r.status === 403) {
    const body = await r.json().catch(() => ({}));
    signIn(body.error || "sign in");
    return;
  }
  $("login").hidden = true; $("main").hidden = false; $("logout").hidden = !sessionStorage.getItem(KEY);
  setStatus("live", "live");
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) { onBlock(buf.slice(0, i)); buf = buf.slice(i + 2); }
    }
  } catch (err) {
    if (ctl.signal.aborted) return;
  }
  if (!ctl.signal.aborted) { setStatus("disconnected: retrying", "down"); setTimeout(stream, 2000); }
}

function signIn(message) {
  if (S.abort) S.abort.abort();
  $("main").hidden = true; $("login").hidden = false;
  $("login-error").textContent = sessionStorage.getItem(KEY) ? message : "";
  setStatus("signed out", "down");
}

// -- details and trace ------------------------------------------------------------------

function table(rows) {
  const t = el("table");
  for (const [k, v] of rows) { const tr = el("tr"); tr.append(el("th", {}, k), el("td", {}, String(v ?? "—"))); t.append(tr); }
  return t;
}

async function select(id) {
  if (S.selected !== null && S.eps.has(S.selected)) S.eps.get(S.selected).g.classList.remove("selected");
  S.selected = id;
  const e = S.eps.get(id);
  e.g.classList.add("selected");
  for (const r of S.routes.values()) r.path.classList.toggle("hot", r.data.a === id || r.data.b === id);
  $("t-src").value = e.data.name; $("t-tenant").value = e.data.tenant;
  const body = $("detail-body");
  const asked = ++S.asked;  // only the newest answer is shown
  if (body.dataset.shown !== String(id)) body.replaceChildren(el("p", { class: "hint" }, "loading…"));
  let d;
  try { d = await api("GET", `/ui/containers/${id}`); } catch (err) {
    if (asked === S.asked) { body.replaceChildren(el("p", { class: "error" }, err.message)); delete body.dataset.shown; }
    return;
  }
  if (asked !== S.asked) return;
  body.dataset.shown = String(id);  // a second click refreshes in place, without "loading…"
  body.dataset.answers = String(asked);
  const c = d.container;
  $("detail-hint").hidden = true;
  const parts = [el("h3", {}, c.name), table([["tenant", c.tenant], ["network", c.network], ["IP", c.ip],
    ["PIP", c.pip], ["MAC", c.mac], ["host", c.host + (d.alive ? "" : " (down)")]])];
  parts.push(el("h4", {}, `Live routes (${d.routes.length})`));
  const rt = el("table", { id: "detail-routes" });
  rt.append(el("tr")); rt.firstChild.append(...["peer", "scope", "packets", "bytes", "idle s"].map((h) => el("th", {}, h)));
  for (const r of d.routes) {
    const tr = el("tr");
    const scope = r.scope ? `${({ 6: "tcp", 17: "udp", 1: "icmp" })[r.scope[0]] || r.scope[0]}/${r.scope[1]}` : "any";
    tr.append(...[r.peer, scope, r.packets, r.bytes, r.idle_s].map((v) => el("td", {}, String(v ?? "—"))));
    rt.append(tr);
  }
  parts.push(rt, el("h4", {}, "Groups"), el("p", {}, d.groups.length ? d.groups.join(", ") : "none"));
  parts.push(el("h4", {}, "Rules that apply"));
  const ul = el("ul", { id: "detail-rules" });
  for (const r of d.rules) {
    const what = r.kind === "pair" ? `${r.action} ${r.a} ↔ ${r.b}`
      : `${r.action} ${r.a} → ${r.b} ${r.protocol || "any"}${r.ports ? "/" + r.ports : ""} (priority ${r.priority})`;
    ul.append(el("li", {}, `${r.label}: ${what}`));
  }
  if (!d.rules.length) ul.append(el("li", {}, "none"));
  parts.push(ul);
  body.replaceChildren(...parts);
}

function showTrace(d) {
  const out = [el("p", { id: "trace-decision", class: "decision " + (d.allowed ? "allowed" : "denied") },
                   `${d.src} → ${d.dst}: ${d.allowed ? "ALLOWED" : "DENIED"}`),
               el("p", { id: "trace-reason" }, d.reason)];
  if (d.rule) out.push(el("p", { id: "trace-rule" }, "decided by " + d.rule));
  if (d.scope) out.push(el("p", {}, "scope: " + d.scope.join("/")));
  for (const [hostName, flows] of Object.entries(d.flows || {})) {
    out.push(el("h4", {}, "flows on " + hostName), el("pre", { class: "flows", "data-host": hostName }, flows.join("\n")));
  }
  out.push(el("p", {}, `live routes of this pair: ${(d.live || []).length}`));
  for (const [k, v] of Object.entries(d)) {  // anything else the trace tells (per-host traces)
    if (["src", "dst", "allowed", "reason", "rule", "scope", "flows", "live"].includes(k)) continue;
    if (v && typeof v === "object" && Object.keys(v).length) {
      const det = el("details", { open: "" });
      det.append(el("summary", {}, k), el("pre", {}, JSON.stringify(v, null, 2)));
      out.push(det);
    }
  }
  $("trace-out").replaceChildren(...out);
}

// -- wiring -------------------------------------------------------------------------------

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("token").value = "";
  stream();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); signIn(""); });
$("trace").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { src: $("t-src").value.trim(), dst: $("t-dst").value.trim(), tenant: $("t-tenant").value.trim() || "default" };
  if ($("t-proto").value) body.protocol = $("t-proto").value;
  if ($("t-port").value) body.port = Number($("t-port").value);
  $("trace-out").replaceChildren(el("p", { class: "hint" }, "tracing…"));
  try { showTrace(await api("POST", "/trace", body)); } catch (err) {
    $("trace-out").replaceChildren(el("p", { id: "trace-error", class: "error" }, err.message));
  }
});
$("zoom").addEventListener("change", () => { S.zoom = Number($("zoom").value); zoom(); });
window.addEventListener("resize", () => { if (!S.dirty) { S.dirty = true; requestAnimationFrame(layout); } });
stream();
