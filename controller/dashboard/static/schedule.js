// Kuat ops dashboard, Schedule tab: upload a day-ahead schedule (the CSV the quota API takes: hour,kwh with Astana
// hours 1..24), preview it against what the fleet can draw (per hour, with warnings), push it through the quota API;
// and the machine rules (protected, priority) edited with the quota API's own validation, each 422 shown next to
// its field. Loaded after app.js and ops.js (uses $, $$, api, esc, fmt, toast, showTab, state, key, drawHourBars,
// astanaIso, kuatFieldErrors).
"use strict";
(() => {
  const nav = $("header nav");
  const link = document.createElement("a");
  link.href = "#schedule"; link.dataset.tab = "schedule"; link.textContent = "Schedule";
  nav.insertBefore(link, $("nav a[data-tab=quota]").nextSibling);
  const section = document.createElement("section");
  section.id = "tab-schedule"; section.className = "tab";
  section.innerHTML = `
  <div class="cols">
    <div class="card"><div class="label">Day-ahead schedule file (CSV <code>hour,kwh</code>, hours 1..24 in Astana time)</div>
      <form id="sched-form" class="form">
        <label>File <input id="sched-file" name="file" type="file" accept=".csv,text/csv" required></label>
        <label>Day (Astana) <input id="sched-day" name="day" type="date" required></label>
        <label>Reference <input id="sched-ref" name="reference" maxlength="200" placeholder="KOREM result no."></label>
        <div class="toolbar"><button id="sched-preview-btn" type="submit">Preview against the fleet</button>
          <button id="sched-push" type="button" class="danger" disabled>Push schedule</button></div>
      </form>
      <div id="sched-errors"></div><div id="sched-status" class="muted"></div></div>
    <div class="card"><div class="label">Preview: bought vs what the fleet can draw <span id="sched-summary" class="muted"></span></div>
      <canvas id="sched-chart" height="220"></canvas>
      <div class="legend"><span class="lg power"></span>bought kWh (red: warning) <span class="lg limit"></span>the fleet can draw</div></div>
  </div>
  <div class="card wide"><div class="label">Per hour</div><div class="tablewrap"><table id="sched-preview"><thead><tr>
    <th>Hour (Astana)</th><th class="num">Bought kWh</th><th class="num">Fleet can draw kWh</th><th class="num">Protected kWh</th>
    <th>Status</th><th>Warnings</th></tr></thead><tbody></tbody></table></div></div>
  <div class="card wide"><div class="label">Machine rules (protected: never slept or cut; higher priority is cut later)
    <span id="rules-state" class="muted"></span></div>
    <div class="tablewrap"><table id="rules"><thead><tr><th>Machine</th><th>Serial</th><th>Model</th><th>Rack</th><th>State</th>
    <th>Protected</th><th>Priority</th><th></th></tr></thead><tbody></tbody></table></div></div>`;
  $("main").insertBefore(section, $("#tab-registry"));
  const active = () => section.classList.contains("active");
  const sched = {csv: null, preview: null};
  const site = () => state.snapshot && state.snapshot.site && state.snapshot.site.name;
  const tomorrow = () => astanaIso(Date.now() + 24 * 3600e3).slice(0, 10);
  if (!$("#sched-day").value) $("#sched-day").value = tomorrow();

  async function send(method, path, body, type = "application/json") {
    const r = await fetch(path, {method, body, headers: {"X-API-Key": key(), "Content-Type": type}});
    const text = await r.text();
    let doc; try { doc = text ? JSON.parse(text) : null; } catch { doc = text; }
    return {ok: r.ok, status: r.status, doc};
  }
  const showErrors = (where, doc) => { $(where).innerHTML = kuatFieldErrors(doc).map(m => `<div class="field-error">${esc(m)}</div>`).join(""); };

  $("#sched-form").addEventListener("submit", async e => {
    e.preventDefault();
    const file = $("#sched-file").files[0];
    $("#sched-push").disabled = true; $("#sched-errors").innerHTML = ""; $("#sched-status").textContent = "";
    if (!file) return;
    sched.csv = await file.text();
    const r = await send("POST", `/api/v1/dashboard/schedule/preview?day=${encodeURIComponent($("#sched-day").value)}`, sched.csv, "text/csv");
    if (!r.ok) { showErrors("#sched-errors", r.doc); sched.preview = null; drawPreview(); return; }
    sched.preview = r.doc; drawPreview();
    $("#sched-push").disabled = false;
    $("#sched-status").textContent = r.doc.warnings ? `${r.doc.warnings} hour(s) with a warning: read them before pushing` : "no warnings";
  });
  function drawPreview() {
    const p = sched.preview;
    $("#sched-summary").textContent = p ? `${p.day} · ${fmt.num(p.total_bought_kwh, 1)} kWh bought · the fleet (${p.machines} machines, ${fmt.kw(p.fleet_max_w)}${p.connection_kw ? `, connection ${p.connection_kw} kW` : ""}) can draw ${fmt.num(p.total_can_draw_kwh, 1)} kWh` : "";
    $("#sched-preview tbody").innerHTML = p ? p.hours.map(h => `<tr data-hour="${h.hour}"><td data-sort="${h.hour}">${esc(h.label)}</td>
      <td class="num">${fmt.num(h.bought_kwh, 1)}</td><td class="num">${fmt.num(h.can_draw_kwh, 1)}</td><td class="num">${fmt.num(h.protected_kwh, 1)}</td>
      <td><span class="pill ${esc(h.status)}">${esc(h.status)}</span></td><td>${esc(h.warnings.join("; "))}</td></tr>`).join("") : "";
    if (!active()) return;
    drawHourBars($("#sched-chart"), p ? p.hours.map(h => ({hour: h.hour, kwh: h.bought_kwh, warn: h.warnings.length > 0})) : [],
      p ? p.hours.map(h => h.can_draw_kwh) : null);
  }
  $("#sched-push").addEventListener("click", async () => {
    const p = sched.preview, s = site();
    if (!p || !sched.csv || !s) return;
    if (!confirm(`Push the schedule for ${p.day} (${fmt.num(p.total_bought_kwh, 1)} kWh${p.warnings ? `, ${p.warnings} hour(s) with warnings` : ""}) to ${s}?`)) return;
    const q = new URLSearchParams({day: p.day}); if ($("#sched-ref").value) q.set("reference", $("#sched-ref").value);
    const r = await send("POST", `/api/v1/quota/${encodeURIComponent(s)}/schedules?${q}`, sched.csv, "text/csv");
    if (!r.ok) { showErrors("#sched-errors", r.doc); return; }
    $("#sched-push").disabled = true;
    $("#sched-status").textContent = `schedule ${r.doc.id} for ${r.doc.day} is in force (${r.doc.source})`;
    toast(`schedule ${r.doc.id} pushed for ${r.doc.day}`);
  });

  // ---------------------------------------------------------- machine rules
  async function loadRules() {
    try {
      const r = await api("/api/v1/dashboard/machine-rules");
      $("#rules-state").textContent = r.quota ? `${r.machines.filter(m => m.rule).length} rule(s) set` : "the site is not under quota control: rules cannot be set";
      $("#rules tbody").innerHTML = r.machines.map(m => `<tr data-id="${esc(m.device_id)}"><td>${esc(m.device_id)}</td><td>${esc(m.serial)}</td>
        <td>${esc(m.model)}</td><td>${esc(m.rack)}</td><td><span class="pill ${esc(m.state)}">${esc(m.state)}</span></td>
        <td data-sort="${m.protected ? 1 : 0}"><input type="checkbox" name="protected" ${m.protected ? "checked" : ""} aria-label="protected"><span class="field-error" data-for="protected"></span></td>
        <td data-sort="${m.priority}"><input name="priority" value="${esc(m.priority)}" size="5" inputmode="numeric" aria-label="priority"><span class="field-error" data-for="priority"></span></td>
        <td><button type="button" class="save-rule">Save</button><span class="field-error" data-for="other"></span></td></tr>`).join("");
    } catch (e) { toast("rules: " + e.message, true); }
  }
  $("#rules tbody").addEventListener("click", async e => {
    const b = e.target.closest(".save-rule"); if (!b) return;
    const tr = b.closest("tr"), id = tr.dataset.id, s = site();
    $$(".field-error", tr).forEach(x => { x.textContent = ""; }); $$("input", tr).forEach(i => i.classList.remove("invalid"));
    const priority = $("input[name=priority]", tr).value.trim();
    const body = JSON.stringify({protected: $("input[name=protected]", tr).checked, priority: priority === "" ? null : priority});
    const r = await send("PUT", `/api/v1/quota/${encodeURIComponent(s)}/machines/${encodeURIComponent(id)}`, body);
    if (r.ok) { toast(`rule of ${id} saved`); tr.classList.add("saved"); return; }
    const detail = Array.isArray(r.doc && r.doc.detail) ? r.doc.detail : [{loc: ["other"], msg: (r.doc && r.doc.detail) || r.status}];
    for (const d of detail) {  // the API's 422 names the field: its message goes next to that field
      const loc = Array.isArray(d.loc) ? d.loc : [d.loc], field = ["protected", "priority"].find(f => loc.includes(f)) || "other";
      const out = $(`.field-error[data-for=${field}]`, tr); out.textContent = (out.textContent ? out.textContent + "; " : "") + d.msg;
      const input = $(`input[name=${field}]`, tr); if (input) input.classList.add("invalid");
    }
  });

  link.addEventListener("click", e => { e.preventDefault(); location.hash = "schedule"; showTab("schedule"); loadRules(); drawPreview(); });
  window.addEventListener("kuat-theme", () => active() && drawPreview());
  window.addEventListener("resize", () => active() && drawPreview());
  if (location.hash === "#schedule") { showTab("schedule"); loadRules(); }
  window.kuatSchedule = {loadRules};
})();
