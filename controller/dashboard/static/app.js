// Kuat ops dashboard: plain JS, no CDN, no build step. Live data over SSE (/api/v1/dashboard/stream).
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const $$ = (s, el = document) => [...el.querySelectorAll(s)];
// A key handed over in the URL's fragment (#key=K, or #tab&key=K: the demo's link) never reaches a server (no
// access or proxy log sees a fragment); it is kept in this browser and removed from the address bar and the
// history at once. A key in the query string is refused by the API (it would be in every log on the way).
(() => {
  const parts = location.hash.slice(1).split("&").filter(Boolean);
  const given = parts.find(p => p.startsWith("key="));
  if (!given) return;
  localStorage.setItem("kuat-key", decodeURIComponent(given.slice(4)));
  const rest = parts.filter(p => !p.startsWith("key=")).join("&");
  history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
})();
const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("kuat-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("kuat-key", keyInput.value); connect(); refreshAll(); });
const key = () => keyInput.value.trim();

const fmt = {
  kw: w => w == null ? "—" : (Math.abs(w) >= 1e6 ? (w / 1e6).toFixed(2) + " MW" : (w / 1e3).toFixed(1) + " kW"),
  ths: t => t == null ? "—" : (t >= 1000 ? (t / 1000).toFixed(2) + " PH/s" : t.toFixed(1) + " TH/s"),
  kwh: k => k == null ? "—" : k.toFixed(1) + " kWh",
  num: (n, d = 0) => n == null ? "—" : Number(n).toFixed(d),
  // every time on the page is Astana time (UTC+5 all year since 2024-03-01), whatever the browser's own zone
  hour: ts => ts ? astanaIso(ts).slice(5, 16).replace("T", " ") : "—",
  time: ts => ts ? astanaIso(ts).slice(11, 19) : "—",
  hm: ts => ts ? astanaIso(ts).slice(11, 16) : "—",
};
const ASTANA_OFFSET_MS = 5 * 3600e3;
function astanaIso(ts) { const t = typeof ts === "number" ? ts : Date.parse(ts); return new Date(t + ASTANA_OFFSET_MS).toISOString(); }
// UTC instants inside server text (order descriptions, the limit's reason) shown as Astana wall time
const astanaText = text => String(text ?? "").replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/g,
  iso => astanaIso(iso).slice(0, 16).replace("T", " ") + " Astana");
const cssVar = name => getComputedStyle(document.body).getPropertyValue(name).trim();
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

async function api(path, opts = {}) {
  const r = await fetch(path, {...opts, headers: {"X-API-Key": key(), "Content-Type": "application/json", ...(opts.headers || {})}});
  const text = await r.text();
  let body; try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!r.ok) {
    const detail = body && body.detail ? (Array.isArray(body.detail) ? body.detail.map(d => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ") : body.detail) : r.statusText;
    throw new Error(`${r.status} ${detail}`);
  }
  return body;
}
function toast(msg, bad = false) {
  const t = $("#toast"); t.textContent = msg; t.style.borderColor = bad ? "var(--over)" : "var(--accent)"; t.style.display = "block";
  clearTimeout(toast.h); toast.h = setTimeout(() => t.style.display = "none", 5000);
}

// ---------------------------------------------------------------- tabs
function showTab(name) {
  $$("nav a").forEach(a => a.classList.toggle("active", a.dataset.tab === name));
  $$(".tab").forEach(s => s.classList.toggle("active", s.id === "tab-" + name));
  if (name === "fleet") loadFleet();
  if (name === "registry") loadRegistry();
  if (name === "quota" && state.snapshot) renderQuota(state.snapshot.quota);
}
$$("nav a").forEach(a => a.addEventListener("click", e => { e.preventDefault(); location.hash = a.dataset.tab; showTab(a.dataset.tab); }));

// ---------------------------------------------------------------- live snapshot
const state = {snapshot: null, fleet: [], sort: {k: "device_id", dir: 1}, device: null};
let es = null;
// The stream and downloads authenticate with a short-lived HttpOnly session cookie set from the key (sent in a
// header): the key never goes into a URL. A session is renewed before each stream and download.
const session = () => fetch("/api/v1/session", {method: "POST", headers: {"X-API-Key": key()}});
async function connect() {
  if (es) es.close();
  await session().catch(() => null);
  es = new EventSource("/api/v1/dashboard/stream");
  es.addEventListener("snapshot", ev => { setConn(true); render(JSON.parse(ev.data)); });
  es.onerror = () => { setConn(false); es.close(); setTimeout(connect, 2000); };  // a new session, then reconnect
}
function setConn(ok) { const c = $("#conn"); c.textContent = ok ? "live" : "reconnecting…"; c.className = "pill " + (ok ? "online" : "offline"); }

function render(snap) {
  state.snapshot = snap;
  const s = snap.site;
  $("#site-name").textContent = s.name || "";
  $("#v-power").textContent = fmt.kw(s.power_w);
  $("#v-limit").textContent = fmt.kw(s.limit_w);
  const card = $("#card-power");
  card.classList.remove("ok", "near", "over");
  if (s.limit_w != null && s.power_w != null) {
    const share = s.power_w / Math.max(s.limit_w, 1);
    card.classList.add(share > 1.0 ? "over" : share > 0.97 ? "near" : "ok");
    $("#v-headroom").textContent = (s.limit_w - s.power_w >= 0 ? "headroom " : "OVER by ") + fmt.kw(Math.abs(s.limit_w - s.power_w));
  }
  $("#v-hash").textContent = fmt.ths(s.hashrate_ths);
  $("#v-eff").textContent = s.efficiency_jth ? s.efficiency_jth.toFixed(1) + " J/TH" : "—";
  const h = s.hour || {};
  $("#v-hour").textContent = fmt.kwh(h.used_kwh);
  $("#v-hour-purchased").textContent = fmt.kwh(h.purchased_kwh);
  $("#v-hour-bar").style.width = h.purchased_kwh ? Math.min(100, 100 * h.used_kwh / h.purchased_kwh) + "%" : "0";
  $("#v-states").innerHTML = Object.entries(s.states || {}).map(([k, v]) => `<span class="pill ${esc(k)}">${esc(k)} ${v}</span>`).join("");
  $("#v-reason").textContent = astanaText(s.limit_reason || "no limit in force");
  $("#v-gateways").innerHTML = (s.gateways || []).map(g => `<span class="pill ${g.online ? "online" : "offline"}">gateway ${esc(g.id)} ${g.online ? "online" : "OFFLINE"}</span>`).join("");
  drawChart($("#chart"), snap.history || []);
  if ($("#tab-quota").classList.contains("active")) renderQuota(snap.quota);
  if ($("#tab-fleet").classList.contains("active") && Date.now() - (state.fleetAt || 0) > 5000) loadFleet();
}

function drawChart(canvas, rows) {
  const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = canvas.clientHeight || 320;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, W, H);
  g.font = "12px system-ui";
  if (!rows.length) { g.fillStyle = cssVar("--muted"); g.fillText("waiting for data…", 20, 30); return; }
  const pad = {l: 70, r: 10, t: 10, b: 34};
  const t0 = Date.parse(rows[0].ts), t1 = Math.max(Date.parse(rows[rows.length - 1].ts), t0 + 1);
  const vals = rows.flatMap(r => [r.power_w, r.limit_w, r.target_w]).filter(v => v != null);
  const vmax = Math.max(...vals, 1) * 1.08;
  const x = t => pad.l + (W - pad.l - pad.r) * (Date.parse(t) - t0) / (t1 - t0);
  const y = v => H - pad.b - (H - pad.t - pad.b) * v / vmax;
  g.strokeStyle = cssVar("--line"); g.fillStyle = cssVar("--muted"); g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) { const v = vmax * i / 4; g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(W - pad.r, y(v)); g.stroke(); g.fillText(fmt.kw(v), 4, y(v) + 4); }
  canvas.dataset.ticks = String(timeAxis(g, t0, t1, pad.l, W - pad.r, H - pad.b));
  const line = (key, color, step, width) => {
    g.strokeStyle = color; g.lineWidth = width; g.beginPath(); let started = false, prevY = null;
    for (const r of rows) {
      if (r[key] == null) continue;
      const X = x(r.ts), Y = y(r[key]);
      if (!started) { g.moveTo(X, Y); started = true; } else { if (step) g.lineTo(X, prevY); g.lineTo(X, Y); }
      prevY = Y;
    }
    g.stroke();
  };
  line("limit_w", cssVar("--limit"), true, 2.5);
  line("target_w", cssVar("--target"), true, 1.2);
  line("power_w", cssVar("--accent"), false, 2.5);
  if (canvas.id === "chart") $("#chart-range").textContent = `${fmt.time(rows[0].ts)} – ${fmt.time(rows[rows.length - 1].ts)} Astana`;
}

// A time axis along y = `base` from x0 to x1 for epoch ms t0..t1: ticks at a round step (Astana wall clock), labelled
// HH:MM (with seconds when the step is under a minute), and the axis named. Returns how many ticks it drew.
const TICK_STEPS_MS = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3];
function timeAxis(g, t0, t1, x0, x1, base) {
  const want = Math.max(2, Math.floor((x1 - x0) / 90));
  const step = TICK_STEPS_MS.find(s => (t1 - t0) / s <= want) || TICK_STEPS_MS[TICK_STEPS_MS.length - 1];
  const first = Math.ceil((t0 + ASTANA_OFFSET_MS) / step) * step - ASTANA_OFFSET_MS;
  g.strokeStyle = cssVar("--muted"); g.fillStyle = cssVar("--muted"); g.lineWidth = 1;
  g.beginPath(); g.moveTo(x0, base); g.lineTo(x1, base); g.stroke();
  let n = 0;
  for (let t = first; t <= t1; t += step) {
    const X = x0 + (x1 - x0) * (t - t0) / (t1 - t0);
    g.beginPath(); g.moveTo(X, base); g.lineTo(X, base + 5); g.stroke();
    const label = step < 60e3 ? fmt.time(t) : fmt.hm(t), w = g.measureText(label).width;
    g.fillText(label, Math.min(Math.max(X - w / 2, x0), x1 - w), base + 17); n++;
  }
  const title = "Astana time"; g.fillText(title, x1 - g.measureText(title).width, base + 30);
  return n;
}

// ---------------------------------------------------------------- fleet
async function loadFleet() {
  try { state.fleet = await api("/api/v1/dashboard/fleet"); state.fleetAt = Date.now(); renderFleet(); }
  catch (e) { toast("fleet: " + e.message, true); }
}
function renderFleet() {
  const q = $("#fleet-search").value.trim().toLowerCase(), st = $("#fleet-state").value, {k, dir} = state.sort;
  const rows = state.fleet.filter(d => (!st || d.state === st) &&
      (!q || [d.device_id, d.serial, d.ip, d.rack, d.model, d.owner, d.firmware].some(v => String(v ?? "").toLowerCase().includes(q))))
    .sort((a, b) => (a[k] ?? "") > (b[k] ?? "") ? dir : (a[k] ?? "") < (b[k] ?? "") ? -dir : 0);
  $("#fleet-count").textContent = `${rows.length} of ${state.fleet.length}`;
  const sel = window.kuatSelection;
  $("#fleet-table tbody").innerHTML = rows.map(d => `<tr data-id="${esc(d.device_id)}">
    <td class="sel"><input type="checkbox" class="pick" value="${esc(d.device_id)}" ${sel && sel.has(d.device_id) ? "checked" : ""} aria-label="select ${esc(d.serial || d.device_id)}"></td>
    <td>${esc(d.serial || d.device_id)}</td><td>${esc(d.ip)}</td><td>${esc(d.rack)}${d.slot ? " / " + esc(d.slot) : ""}</td><td>${esc(d.model)}</td><td>${esc(d.firmware)}</td>
    <td><span class="pill ${esc(d.state)}">${esc(d.state)}</span></td><td class="num">${fmt.num(d.hashrate_ths, 1)}</td>
    <td class="num">${fmt.num(d.power_w)}</td><td>${esc(d.power_source)}</td><td class="num">${fmt.num(d.temp_c)}</td>
    <td>${esc(d.pool)}</td><td>${esc(d.owner)}</td><td><span class="pill ${esc(d.registration)}">${esc(d.registration)}</span></td>
    <td title="${esc(d.power_why)}"><span class="pill ${esc(d.power_right)}">${esc(d.power_right ?? "")}</span></td></tr>`).join("");
}
$("#fleet-search").addEventListener("input", renderFleet);
$("#fleet-state").addEventListener("change", renderFleet);
$$("#fleet-table th[data-k]").forEach(th => th.addEventListener("click", () => {
  state.sort = {k: th.dataset.k, dir: state.sort.k === th.dataset.k ? -state.sort.dir : 1}; renderFleet();
}));
$("#fleet-table tbody").addEventListener("click", e => {
  if (e.target.closest(".sel")) return;  // the selection checkbox (ops.js) does not open the machine
  const tr = e.target.closest("tr"); if (tr) openDevice(tr.dataset.id);
});

async function openDevice(id) {
  try {
    const d = await api("/api/v1/dashboard/device/" + encodeURIComponent(id));
    state.device = d.device;
    $("#dd-title").textContent = `${d.device.model || ""} ${d.device.serial || id}`;
    $("#dd-body").innerHTML = `<p>${esc(d.device.ip)} · ${d.device.hall ? "hall " + esc(d.device.hall) + " · " : ""}rack ${esc(d.device.rack)}${d.device.slot ? " slot " + esc(d.device.slot) : ""} · ${esc(d.device.firmware)} ·
      <span class="pill ${esc(d.device.state)}">${esc(d.device.state)}</span> · ${fmt.num(d.device.hashrate_ths, 1)} TH/s ·
      ${fmt.num(d.device.power_w)} W (${esc(d.device.power_source)}) · owner ${esc(d.device.owner)}</p>`;
    if (!$("#device-dialog").open) $("#device-dialog").showModal();
    drawChart($("#dd-chart"), (d.history || []).map(r => ({ts: r.ts, power_w: r.power_w})));
    $("#dd-log").innerHTML = (d.commands || []).map(c => `<div>${fmt.time(c.ts)} ${esc(c.kind)} <span class="pill ${esc(c.status)}">${esc(c.status)}</span> ${esc(c.reason || "")}</div>`).join("") || "no commands yet";
  } catch (e) { toast("device: " + e.message, true); }
}
$$(".commands button").forEach(b => b.addEventListener("click", async () => {
  const d = state.device; if (!d) return;
  const kind = b.dataset.cmd, body = {device_id: d.device_id, kind};
  if (kind === "set_power_target") body.power_w = Number($("#dd-watts").value);
  if (!confirm(`Send ${kind}${body.power_w ? " " + body.power_w + " W" : ""} to ${d.serial || d.device_id}?`)) return;
  try {
    const r = await api("/api/v1/commands", {method: "POST", body: JSON.stringify(body)}); toast(`command ${kind} sent (${r.id})`);
    // the agent acks within a poll cycle or two: refresh the log a few times while the dialog stays open
    for (const ms of [1500, 4000, 8000, 15000]) setTimeout(() => $("#device-dialog").open && state.device?.device_id === d.device_id && openDevice(d.device_id), ms);
  }
  catch (e) { toast("command: " + e.message, true); }
}));

// ---------------------------------------------------------------- quota
// Bars per Astana hour (hour n is n-1:00 to n:00), a kWh axis, a tick under every hour and a label every 3 hours;
// `line` (optional, per hour) is drawn as a step line over the bars (the fleet's capacity in the schedule preview).
function drawHourBars(canvas, rows, line) {
  const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = canvas.clientHeight || 200;
  canvas.width = W * dpr; canvas.height = H * dpr; const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, W, H);
  const pad = {l: 56, r: 8, t: 8, b: 34}, n = Math.max(rows.length, 1);
  let max = Math.max(...rows.map(r => r.kwh), ...(line || []), 1) * 1.08;
  const usual = Math.max(...(line || []), ...rows.filter(r => !r.warn).map(r => r.kwh), 1);
  if (max > 2.5 * usual) max = 1.5 * usual;  // one absurd hour must not flatten the others: it is clipped, marked ▲
  const bw = (W - pad.l - pad.r) / n;
  const y = v => H - pad.b - (H - pad.t - pad.b) * v / max;
  g.font = "11px system-ui"; g.strokeStyle = cssVar("--line"); g.fillStyle = cssVar("--muted"); g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) { const v = max * i / 4; g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(W - pad.r, y(v)); g.stroke(); g.fillText(v.toFixed(v < 10 ? 1 : 0) + " kWh", 2, y(v) + 4); }
  rows.forEach((r, i) => {
    const X = pad.l + i * bw;
    g.fillStyle = r.warn ? cssVar("--over") : r.current ? cssVar("--limit") : cssVar("--accent");
    const top = Math.min(r.kwh, max);
    g.fillRect(X + 1, y(top), Math.max(bw - 2, 1), y(0) - y(top));
    if (r.kwh > max) { g.fillStyle = cssVar("--text"); g.fillText("▲ " + Math.round(r.kwh), X + 1, pad.t + 10); }
    g.strokeStyle = cssVar("--muted"); g.beginPath(); g.moveTo(X, y(0)); g.lineTo(X, y(0) + (i % 3 === 0 ? 6 : 3)); g.stroke();
    g.fillStyle = cssVar("--muted"); if (i % 3 === 0) g.fillText(String(r.hour - 1).padStart(2, "0") + ":00", X + 1, H - pad.b + 16);
  });
  if (line) {
    g.strokeStyle = cssVar("--limit"); g.lineWidth = 2; g.beginPath();
    line.forEach((v, i) => { const X = pad.l + i * bw; if (i === 0) g.moveTo(X, y(v)); else g.lineTo(X, y(v)); g.lineTo(X + bw, y(v)); });
    g.stroke();
  }
  g.fillStyle = cssVar("--muted"); const title = "hour (Astana time)"; g.fillText(title, W - pad.r - g.measureText(title).width, H - 4);
  canvas.dataset.ticks = String(rows.length);
}
function renderQuota(q) {
  if (!q) return;
  const sc = $("#schedule-chart"), rows = q.schedule || [];
  drawHourBars(sc, rows.map(r => ({hour: r.hour, kwh: r.kwh ?? 0, current: r.current})));
  $("#emergencies").innerHTML = (q.emergencies || []).map(e => `<div><span class="pill ${e.active ? "open" : ""}">${e.active ? "ACTIVE" : "ended"}</span>
    ${esc(e.reference)}: ${esc(astanaText(e.describe))} ${e.active ? `<button data-lift="${esc(e.id)}">Lift</button>` : ""}</div>`).join("") || "<p class='muted'>no emergency orders</p>";
  $$("#emergencies button[data-lift]").forEach(b => b.addEventListener("click", async () => {
    if (!confirm("Lift this emergency order?")) return;
    try { await api(`/api/v1/quota/emergencies/${b.dataset.lift}/lift`, {method: "POST"}); toast("lifted"); } catch (e) { toast(e.message, true); }
  }));
  $("#tenants").innerHTML = (q.tenants || []).map(t => `<span class="pill">${esc(t.name || t.tenant)}: ${fmt.num(t.share_pct, 1)} % · ${fmt.kw(t.allotted_w)} allotted · ${fmt.kw(t.used_w)} used</span>`).join(" ") || "<span class='muted'>no tenant contracts</span>";
  $("#ledger tbody").innerHTML = (q.ledger || []).map(l => `<tr><td>${esc(fmt.hour(l.hour))}</td><td class="num">${fmt.num(l.allotted_kwh, 1)}</td>
    <td class="num">${fmt.num(l.used_kwh, 1)}</td><td class="num">${fmt.num(l.excursion_kwh, 2)}</td><td>${esc((l.causes || []).join(", "))}</td></tr>`).join("");
}
$("#emergency-form").addEventListener("submit", async e => {
  e.preventDefault(); const f = new FormData(e.target);
  const body = {reference: f.get("reference")};
  if (f.get("unit") === "pct") body.cap_pct = Number(f.get("value")); else body.cap_mw = Number(f.get("value"));
  if (f.get("minutes")) body.minutes = Number(f.get("minutes"));
  if (!confirm(`Apply emergency cap ${f.get("value")} ${f.get("unit") === "pct" ? "%" : "MW"} (${body.reference})?`)) return;
  try { await api("/api/v1/dashboard/emergency", {method: "POST", body: JSON.stringify(body)}); toast("emergency cap applied"); e.target.reset(); }
  catch (err) { toast("emergency: " + err.message, true); }
});
// Downloads send the key in a header and save a Blob: the key never goes into a URL (history, proxy logs).
async function downloadFile(path, name) {
  try {
    const r = await fetch(path, {headers: {"X-API-Key": key()}});
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a"); a.href = url; a.download = name; document.body.appendChild(a); a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
    toast(`downloaded ${name}`);
  } catch (e) { toast("download: " + e.message, true); }
}
$("#ledger-csv").addEventListener("click", e => { e.preventDefault(); downloadFile("/api/v1/dashboard/ledger.csv", "kuat-ledger.csv"); });

// ---------------------------------------------------------------- registry
async function loadRegistry() {
  try {
    const r = await api("/api/v1/dashboard/registry");
    $("#approve-owner").innerHTML = (r.owners || []).map(o => `<option value="${esc(o.id)}">${esc(o.name)} (${esc(o.licence)})</option>`).join("");
    $("#pending-count").textContent = `${r.pending.length} pending`;
    $("#pending tbody").innerHTML = r.pending.map(p => `<tr><td><input type="checkbox" value="${esc(p.serial)}"></td><td>${esc(p.serial)}</td>
      <td>${esc(p.model)}</td><td>${esc(p.mac)}</td><td>${esc(p.firmware)}</td><td>${esc(p.location)}</td><td>${esc((p.pools || []).join(" "))}</td>
      <td><button data-approve="${esc(p.serial)}">Approve</button></td></tr>`).join("");
    $$("#pending button[data-approve]").forEach(b => b.addEventListener("click", () => approve([b.dataset.approve])));
    $("#violations tbody").innerHTML = r.violations.map(v => `<tr><td>${esc(v.kind)}</td><td>${esc(v.subject)}</td><td>${fmt.hour(v.first_seen)}</td>
      <td><span class="pill ${esc(v.status)}">${esc(v.status)}</span></td><td>${esc(v.evidence)}</td></tr>`).join("");
  } catch (e) { toast("registry: " + e.message, true); }
}
async function approve(serials) {
  const owner = $("#approve-owner").value;
  if (!serials.length || !confirm(`Approve ${serials.length} registration(s) for the selected owner?`)) return;
  try { const r = await api("/api/v1/dashboard/approve", {method: "POST", body: JSON.stringify({serials, owner_id: owner})}); toast(`approved ${r.approved}`); loadRegistry(); }
  catch (e) { toast("approve: " + e.message, true); }
}
$("#registry-csv").addEventListener("click", () => downloadFile("/api/v1/registry/export.csv", "hsc-registry.csv"));
$("#registry-jsonl").addEventListener("click", () => downloadFile("/api/v1/registry/export.jsonl", "hsc-registry.jsonl"));
$("#approve-selected").addEventListener("click", () => approve($$("#pending tbody input:checked").map(i => i.value)));
$("#pending-all").addEventListener("change", e => $$("#pending tbody input").forEach(i => i.checked = e.target.checked));

// ---------------------------------------------------------------- start
async function refreshAll() { try { render(await api("/api/v1/dashboard/snapshot")); } catch (e) { toast(e.message, true); } }
connect(); refreshAll(); showTab((location.hash || "#site").slice(1));
window.addEventListener("resize", () => state.snapshot && render(state.snapshot));
