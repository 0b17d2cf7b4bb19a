// Kuat ops dashboard: the operators' habits and the site at a glance. Loaded after app.js (uses $, $$, api, esc, fmt,
// toast, showTab, state, openDevice, loadFleet, downloadFile). Adds: the dark/light theme (remembered), the Astana
// clock, every table sortable and exportable as CSV, the selection of machines (fleet table and rack view) with bulk
// actions and each machine's outcome, and the Racks tab (halls, racks, slots coloured by state, power or temperature,
// rack power against its PDU feeds).
"use strict";
(() => {
  const racks = {doc: null, timer: null};
  // ------------------------------------------------------------ theme
  const themeButton = $("#theme-toggle");
  function setTheme(name) {
    document.documentElement.dataset.theme = name;
    localStorage.setItem("kuat-theme", name);
    themeButton.textContent = name === "light" ? "Dark theme" : "Light theme";
    if (state.snapshot) render(state.snapshot);  // canvases take their colours from the theme
    if (racks.doc) drawRacks(racks.doc);
    window.dispatchEvent(new Event("kuat-theme"));
  }
  const stored = localStorage.getItem("kuat-theme");
  setTheme(stored || (window.matchMedia && matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
  themeButton.addEventListener("click", () => setTheme(document.documentElement.dataset.theme === "light" ? "dark" : "light"));

  // ------------------------------------------------------------ Astana clock (every time on the page is Astana time)
  const clockPill = $("#astana-clock");
  const tick = () => { clockPill.textContent = "Astana " + astanaIso(Date.now()).slice(11, 19) + " (UTC+5)"; };
  tick(); setInterval(tick, 1000);

  // ------------------------------------------------------------ every table: sortable, exportable as CSV
  const cellKey = td => td ? (td.dataset.sort ?? td.textContent.trim()) : "";
  // a cell is a number when it is one, optionally with a unit ("3 068 W" no, "3068 W" / "72 %" / "1.5 kWh" yes);
  // anything else (serials, MACs, addresses) compares as text, character by character
  const NUMBER = /^-?\d[\d,]*(\.\d+)?\s*[A-Za-z%°/]*$/;
  const asNumber = s => NUMBER.test(String(s).trim()) ? parseFloat(String(s).replace(/,/g, "")) : null;
  function compare(a, b) {
    const x = asNumber(a), y = asNumber(b);
    if (x != null && y != null) return x - y;
    if (x != null) return -1; if (y != null) return 1;  // numbers before text and "—"
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function applySort(table) {
    const s = table._sort, body = table.tBodies[0];
    if (!s || !body) return;
    const rows = [...body.rows].filter(r => r.cells.length > s.i);
    rows.sort((r1, r2) => s.dir * compare(cellKey(r1.cells[s.i]), cellKey(r2.cells[s.i])));
    rows.forEach(r => body.appendChild(r));
    table._observer && table._observer.takeRecords();  // our own moves are not a re-render
    [...table.tHead.rows[0].cells].forEach((th, i) => {
      th.classList.toggle("sorted-asc", i === s.i && s.dir > 0); th.classList.toggle("sorted-desc", i === s.i && s.dir < 0);
    });
  }
  const csvCell = v => /[",\n;]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
  function tableCsv(table) {
    const keep = [...table.tHead.rows[0].cells].map(th => !th.classList.contains("sel") && th.textContent.trim() !== "");
    const line = cells => [...cells].filter((_, i) => keep[i]).map(c => csvCell(c.textContent.trim())).join(",");
    const body = table.tBodies[0] ? [...table.tBodies[0].rows].filter(r => r.cells.length === keep.length) : [];
    return [line(table.tHead.rows[0].cells), ...body.map(r => line(r.cells))].join("\n") + "\n";
  }
  function exportCsv(table) {
    const name = `kuat-${table.id || "table"}-${astanaIso(Date.now()).slice(0, 16).replace(/[:T]/g, "")}-astana.csv`;
    const url = URL.createObjectURL(new Blob([tableCsv(table)], {type: "text/csv"}));
    const a = document.createElement("a"); a.href = url; a.download = name; document.body.appendChild(a); a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }
  function enhance(table) {
    if (table.dataset.enhanced || !table.tHead || !table.tHead.rows.length) return;
    table.dataset.enhanced = "1";
    const tools = document.createElement("div"); tools.className = "tabletools";
    tools.innerHTML = `<button type="button" class="csv-export" title="the rows shown, as CSV">Export CSV</button>`;
    const anchor = table.closest(".tablewrap") || table;
    anchor.parentNode.insertBefore(tools, anchor);
    tools.firstChild.addEventListener("click", () => exportCsv(table));
    if (table.dataset.ownSort) return;  // sorts its data itself (the fleet table)
    [...table.tHead.rows[0].cells].forEach((th, i) => {
      if (th.classList.contains("sel") || th.querySelector("input")) return;
      th.title = "sort"; th.addEventListener("click", () => {
        const s = table._sort; table._sort = {i, dir: s && s.i === i ? -s.dir : 1}; applySort(table);
      });
    });
    if (table.tBodies[0]) {
      table._observer = new MutationObserver(() => applySort(table));
      table._observer.observe(table.tBodies[0], {childList: true});
    }
  }
  const enhanceAll = () => $$("table").forEach(enhance);
  new MutationObserver(enhanceAll).observe($("main"), {childList: true, subtree: true});
  enhanceAll();
  window.kuatTables = {tableCsv, applySort, enhance};

  // ------------------------------------------------------------ selection and bulk actions
  const selection = window.kuatSelection = new Set();
  const known = new Map();  // device id -> what the fleet table or the rack view last said of it
  const panel = document.createElement("div");
  panel.id = "bulk-panel";
  panel.innerHTML = `<div id="bulk-bar" class="bulkbar" hidden><strong id="bulk-count">0 selected</strong>
      <button data-bulk="sleep">Sleep</button><button data-bulk="wake">Wake</button>
      <label>Power target <input id="bulk-watts" type="number" min="0" step="50" placeholder="W" inputmode="numeric"></label>
      <button data-bulk="set_power_target">Set power</button><button data-bulk="reboot">Reboot</button>
      <select id="bulk-owner" aria-label="owner to approve for"></select><button data-bulk="approve">Approve</button>
      <button id="bulk-clear" type="button">Clear selection</button></div>
    <div id="bulk-result" class="card wide" hidden><div class="label">Bulk action <span id="bulk-title"></span>
      <span id="bulk-summary" class="muted"></span></div>
      <table id="bulk-items"><thead><tr><th>Machine</th><th>Serial</th><th>Outcome</th><th>Reason</th><th>Acked (Astana)</th></tr></thead><tbody></tbody></table></div>`;
  $("main").appendChild(panel);
  const bulkTabs = () => ["fleet", "racks"].some(t => $("#tab-" + t) && $("#tab-" + t).classList.contains("active"));
  const bulk = {timer: null, batch: null};
  function selectionChanged() {
    $("#bulk-count").textContent = `${selection.size} selected`;
    $("#bulk-bar").hidden = !selection.size || !bulkTabs();
    $("#bulk-result").hidden = !bulk.batch || !bulkTabs();  // the outcomes belong with the Fleet and Racks tabs
    $$("#fleet-table .pick").forEach(c => { c.checked = selection.has(c.value); });
    $$(".slot[data-id]").forEach(b => b.classList.toggle("selected", selection.has(b.dataset.id)));
  }
  const toggle = (id, on) => { if (on ?? !selection.has(id)) selection.add(id); else selection.delete(id); };
  $("#fleet-table tbody").addEventListener("change", e => { if (e.target.classList.contains("pick")) { toggle(e.target.value, e.target.checked); selectionChanged(); } });
  $("#fleet-all").addEventListener("change", e => { $$("#fleet-table .pick").forEach(c => toggle(c.value, e.target.checked)); selectionChanged(); });
  $("#bulk-clear").addEventListener("click", () => { selection.clear(); $("#fleet-all").checked = false; selectionChanged(); });
  new MutationObserver(() => { (state.fleet || []).forEach(d => known.set(d.device_id, d)); selectionChanged(); })
    .observe($("#fleet-table tbody"), {childList: true});
  $$("nav a").forEach(a => a.addEventListener("click", () => setTimeout(selectionChanged, 0)));

  async function loadOwners() {
    try {
      const r = await api("/api/v1/dashboard/registry");
      $("#bulk-owner").innerHTML = (r.owners || []).map(o => `<option value="${esc(o.id)}">${esc(o.name)}</option>`).join("");
    } catch (e) { /* a regulator's key: no approvals anyway */ }
  }

  $$("#bulk-bar button[data-bulk]").forEach(b => b.addEventListener("click", () => runBulk(b.dataset.bulk)));
  async function runBulk(kind) {
    const ids = [...selection], watts = Number($("#bulk-watts").value);
    if (!ids.length) return;
    if (kind === "set_power_target" && !(watts > 0)) { toast("enter the power target in W first", true); return; }
    const names = ids.slice(0, 6).map(id => (known.get(id) || {}).serial || id).join(", ") + (ids.length > 6 ? ` and ${ids.length - 6} more` : "");
    const what = kind === "set_power_target" ? `power target ${watts} W` : kind;
    if (!confirm(`${what} on ${ids.length} machine(s): ${names}?`)) return;  // one confirmation for the whole batch
    if (kind === "approve") return approveSelected(ids);
    try {
      const body = {device_ids: ids, kind}; if (kind === "set_power_target") body.power_w = watts;
      const r = await api("/api/v1/commands/bulk", {method: "POST", body: JSON.stringify(body)});
      toast(`${what}: batch ${r.batch_id.slice(0, 8)} sent to ${r.total - r.failed} of ${r.total}`);
      showBatch(r); followBatch(r.batch_id);
    } catch (e) { toast("bulk: " + e.message, true); }
  }
  function showBatch(b) {
    bulk.batch = b;
    $("#bulk-result").hidden = false;
    $("#bulk-title").textContent = `${b.kind}${b.power_w ? " " + b.power_w + " W" : ""} · batch ${b.batch_id.slice(0, 8)}`;
    $("#bulk-summary").textContent = `${b.acked} acked · ${b.failed} failed · ${b.pending} pending of ${b.total}`;
    $("#bulk-items tbody").innerHTML = b.items.map(i => `<tr data-id="${esc(i.device_id)}"><td>${esc(i.device_id)}</td>
      <td>${esc((known.get(i.device_id) || {}).serial || "")}</td><td><span class="pill ${esc(i.outcome)}">${esc(i.outcome)}</span></td>
      <td>${esc(i.reason || "")}</td><td>${i.acked_at ? fmt.time(i.acked_at) : ""}</td></tr>`).join("");
  }
  function followBatch(id, started = Date.now()) {
    clearTimeout(bulk.timer);
    bulk.timer = setTimeout(async () => {
      try {
        const b = await api("/api/v1/commands/bulk/" + id); showBatch(b);
        if (b.pending && Date.now() - started < 120e3) followBatch(id, started);
        else { loadFleet(); loadRacks(); }
      } catch (e) { toast("bulk: " + e.message, true); }
    }, 1500);
  }
  async function approveSelected(ids) {
    const owner = Number($("#bulk-owner").value);
    const pending = ids.filter(id => (known.get(id) || {}).registration === "pending");
    const items = ids.filter(id => !pending.includes(id)).map(id => ({device_id: id, command_id: null, outcome: "failed",
      reason: `not a pending registration (${(known.get(id) || {}).registration || "unknown"})`, acked_at: null}));
    const batch = {batch_id: "approve-" + Date.now(), kind: "approve", power_w: null, total: ids.length, items};
    if (pending.length) {
      try {
        const serials = pending.map(id => known.get(id).serial);
        const r = await api("/api/v1/dashboard/approve", {method: "POST", body: JSON.stringify({serials, owner_id: owner})});
        pending.forEach(id => items.push({device_id: id, command_id: null, outcome: r.serials.includes(known.get(id).serial) ? "acked" : "failed",
          reason: "registration approved", acked_at: new Date().toISOString()}));
      } catch (e) { pending.forEach(id => items.push({device_id: id, command_id: null, outcome: "failed", reason: e.message, acked_at: null})); }
    }
    Object.assign(batch, {acked: items.filter(i => i.outcome === "acked").length, failed: items.filter(i => i.outcome === "failed").length, pending: 0});
    showBatch(batch); loadFleet(); loadRacks();
  }

  // ------------------------------------------------------------ Racks tab
  const nav = $("header nav");
  const link = document.createElement("a");
  link.href = "#racks"; link.dataset.tab = "racks"; link.textContent = "Racks";
  nav.insertBefore(link, $("nav a[data-tab=fleet]").nextSibling);
  const section = document.createElement("section");
  section.id = "tab-racks"; section.className = "tab";
  section.innerHTML = `<div class="toolbar"><label>Colour by <select id="rack-colour"><option value="state">state</option>
      <option value="power">power</option><option value="temp">temperature</option></select></label>
      <label><input type="checkbox" id="rack-select-mode"> select machines (tap to pick)</label>
      <span id="rack-legend" class="scale"></span><span id="rack-count" class="muted"></span></div>
    <div id="racks-body"></div>`;
  $("main").insertBefore(section, $("#tab-quota"));
  const active = () => section.classList.contains("active");

  async function loadRacks() {
    try { racks.doc = await api("/api/v1/dashboard/racks"); drawRacks(racks.doc); }
    catch (e) { if (active()) toast("racks: " + e.message, true); }
    clearTimeout(racks.timer);
    if (active()) racks.timer = setTimeout(loadRacks, 5000);
  }
  const SHORT_STATE = {mining: "mine", sleeping: "sleep", degraded: "degr", rebooting: "boot", offline: "off"};
  const powerColour = (w, max) => w == null ? "" : `hsl(${220 - 220 * Math.min(1, w / Math.max(max, 1))}, 70%, 55%)`;
  const tempColour = t => t == null ? "" : `hsl(${120 - 120 * Math.min(1, Math.max(0, (t - 40) / 50))}, 70%, 50%)`;
  function drawRacks(doc) {
    const by = $("#rack-colour").value;
    const slots = doc.halls.flatMap(h => h.racks.flatMap(r => r.slots));
    slots.forEach(s => known.set(s.device_id, {...(known.get(s.device_id) || {}), ...s}));
    const maxW = Math.max(...slots.map(s => s.power_w || 0), 1);
    $("#rack-count").textContent = `${doc.placed} of ${doc.machines} machines placed`;
    $("#rack-legend").innerHTML = by === "state"
      ? ["mining", "sleeping", "degraded", "offline"].map(s => `<i class="slot st-${s}" style="min-height:10px"></i>${s}`).join(" ")
      : by === "power" ? `<i style="background:${powerColour(0, 1)}"></i>0 W <i style="background:${powerColour(1, 1)}"></i>${fmt.num(maxW)} W`
      : `<i style="background:${tempColour(40)}"></i>≤40 °C <i style="background:${tempColour(90)}"></i>≥90 °C`;
    $("#racks-body").innerHTML = doc.halls.map(h => `<div class="racks-hall" data-hall="${esc(h.hall)}"><h3>Hall ${esc(h.hall)}</h3><div class="racks">${
      h.racks.map(r => rackCard(r, by, maxW)).join("")}</div></div>`).join("") || "<p class='muted'>no machines seen yet</p>";
    selectionChanged();
  }
  function rackCard(r, by, maxW) {
    const pct = r.load_pct == null ? 0 : Math.min(100, r.load_pct);
    const slot = s => {
      const colour = by === "power" ? powerColour(s.state === "offline" ? null : s.power_w, maxW) : by === "temp" ? tempColour(s.temp_c) : "";
      const value = by === "power" ? (s.power_w == null ? "—" : fmt.num(s.power_w / 1000, 1) + "k") : by === "temp" ? (s.temp_c == null ? "—" : fmt.num(s.temp_c) + "°") : esc(SHORT_STATE[s.state] || s.state);
      return `<button type="button" class="slot st-${esc(s.state)}${s.live ? "" : " stale"}" data-id="${esc(s.device_id)}" data-state="${esc(s.state)}"
        ${colour ? `style="background:${colour}"` : ""} title="${esc(`${s.serial || s.device_id} · ${s.model || ""} · ${s.state} · ${fmt.num(s.power_w)} W · ${fmt.num(s.temp_c)} °C`)}">
        ${s.slot ?? "?"}<small>${value}</small></button>`;
    };
    return `<div class="card rack" data-rack="${esc(r.rack)}"><div class="head"><span class="name">${esc(r.rack)}</span>
      <span class="pill ${esc(r.status)}">${r.capacity_w ? `${fmt.kw(r.power_w)} of ${fmt.kw(r.capacity_w)} (${fmt.num(r.load_pct, 0)} %)` : fmt.kw(r.power_w) + " · feeds not set"}</span></div>
      <div class="load ${esc(r.status)}"><div style="width:${pct}%"></div></div>
      <div class="slots">${r.slots.map(slot).join("")}</div>
      ${r.warnings.map(w => `<div class="warn">${esc(w)}</div>`).join("")}
      <details class="feeds"><summary>PDU feeds: ${r.feeds.map(f => `${esc(f.name)} ${fmt.kw(f.capacity_w)}`).join(", ") || "none"}</summary>
        <form class="feed-form" data-rack="${esc(r.rack)}"><label>Feeds (name:watts, comma separated)
        <input name="feeds" value="${esc(r.feeds.map(f => `${f.name}:${f.capacity_w}`).join(", "))}" placeholder="A:11000, B:11000"></label>
        <button type="submit">Save feeds</button><span class="field-error"></span></form></details>
      <button type="button" class="select-rack" data-rack="${esc(r.rack)}">Select rack</button></div>`;
  }
  $("#racks-body").addEventListener("click", e => {
    const slot = e.target.closest(".slot[data-id]");
    if (slot) {
      if ($("#rack-select-mode").checked || e.ctrlKey || e.metaKey || e.shiftKey) { toggle(slot.dataset.id); selectionChanged(); }
      else openDevice(slot.dataset.id);
      return;
    }
    const all = e.target.closest(".select-rack");
    if (all) {
      const ids = $$(`.rack[data-rack="${CSS.escape(all.dataset.rack)}"] .slot[data-id]`).map(b => b.dataset.id);
      const on = !ids.every(id => selection.has(id)); ids.forEach(id => toggle(id, on)); selectionChanged();
    }
  });
  $("#racks-body").addEventListener("submit", async e => {
    e.preventDefault();
    const form = e.target, out = $(".field-error", form);
    const feeds = form.feeds.value.split(",").map(s => s.trim()).filter(Boolean).map(s => { const [name, w] = s.split(":"); return {name: (name || "").trim(), capacity_w: Number(w)}; });
    try {
      const r = await fetch(`/api/v1/dashboard/racks/${encodeURIComponent(form.dataset.rack)}/feeds`, {method: "PUT",
        headers: {"X-API-Key": key(), "Content-Type": "application/json"}, body: JSON.stringify({feeds})});
      const body = await r.json();
      if (!r.ok) { out.textContent = fieldErrors(body).join("; "); form.feeds.classList.add("invalid"); return; }
      out.textContent = ""; form.feeds.classList.remove("invalid"); toast(`feeds of ${body.rack} saved`); loadRacks();
    } catch (err) { out.textContent = err.message; }
  });
  function fieldErrors(body) {
    const d = body && body.detail;
    if (!Array.isArray(d)) return [String(d || "refused")];
    return d.map(x => `${(Array.isArray(x.loc) ? x.loc.filter(p => p !== "body") : [x.loc]).join(".")}: ${x.msg}`);
  }
  window.kuatFieldErrors = fieldErrors;
  $("#rack-colour").addEventListener("change", () => racks.doc && drawRacks(racks.doc));
  link.addEventListener("click", e => { e.preventDefault(); location.hash = "racks"; showTab("racks"); loadRacks(); loadOwners(); selectionChanged(); });
  $$("nav a[data-tab=fleet]").forEach(a => a.addEventListener("click", loadOwners));
  if (location.hash === "#racks") { showTab("racks"); loadRacks(); }
  if (location.hash === "#racks" || location.hash === "#fleet") loadOwners();
  window.kuatRacks = {loadRacks, drawRacks};
})();
