// Kuat ops dashboard, Alerts tab: the open alerts (acknowledge), the rules (define, edit, delete), the channels
// (webhook, e-mail; test), and the history. Live through /api/v1/alerts/stream. Loaded after app.js; uses its
// helpers ($, $$, api, esc, toast, showTab, key) and adds its own tab, so index.html needs only its script line.
// Times are Astana time (UTC+5 all year since 2024-03-01) whatever the browser's zone, and labelled so.
"use strict";
(() => {
  const nav = document.querySelector("header nav");
  const link = document.createElement("a");
  link.href = "#alerts"; link.dataset.tab = "alerts"; link.innerHTML = 'Alerts <span id="alerts-badge" class="pill" hidden></span>';
  nav.appendChild(link);
  const section = document.createElement("section");
  section.id = "tab-alerts"; section.className = "tab";
  section.innerHTML = `
  <div class="card wide"><div class="label">Open alerts <span id="alerts-live" class="muted"></span></div>
    <div class="tablewrap"><table id="alerts-open"><thead><tr><th>Severity</th><th>Status</th><th>Rule</th><th>Subject</th>
      <th>What</th><th>Since (Astana time)</th><th>Fired (Astana time)</th><th>Acknowledged</th><th></th></tr></thead><tbody></tbody></table></div>
    <p id="alerts-none" class="muted">no open alerts</p></div>
  <div class="cols">
    <div class="card"><div class="label" id="alert-form-title">New rule</div>
      <form id="alert-rule-form" class="form">
        <input type="hidden" name="id">
        <label>Name <input name="name" required maxlength="200"></label>
        <label>Condition <select name="condition"></select></label>
        <label><span>Threshold <span id="alert-threshold-means" class="muted"></span></span><input name="threshold" type="number" step="any"></label>
        <label>Sustain (seconds) <input name="sustain_s" type="number" min="0" step="1" value="60"></label>
        <label>Severity <select name="severity"><option>warning</option><option>critical</option><option>info</option></select></label>
        <label>Repeat every (seconds, empty: never) <input name="repeat_s" type="number" min="60" step="1"></label>
        <fieldset id="alert-scope"><legend class="muted">Scope (comma-separated; empty: all)</legend>
          <label>Sites <input name="scope.sites"></label><label>Racks <input name="scope.racks"></label>
          <label>Owners (BIN or name) <input name="scope.owners"></label><label>Models <input name="scope.models"></label>
          <label>Machines (MAC or serial) <input name="scope.machines"></label></fieldset>
        <div><span class="muted">Channels</span> <span id="alert-rule-channels"></span></div>
        <label>Enabled <input name="enabled" type="checkbox" checked></label>
        <div id="alert-rule-errors"></div>
        <div><button type="submit">Save rule</button> <button type="button" id="alert-rule-reset">New</button></div>
      </form></div>
    <div class="card"><div class="label">Channels</div>
      <table id="alert-channels"><thead><tr><th>Name</th><th>Kind</th><th>Where</th><th></th></tr></thead><tbody></tbody></table>
      <form id="alert-channel-form" class="form">
        <label>Name <input name="name" required></label>
        <label>Kind <select name="kind"><option value="webhook">webhook</option><option value="email">e-mail</option></select></label>
        <label>URL (webhook) <input name="url" placeholder="https://…"></label>
        <label>Shared secret (webhook; write-only) <input name="secret" type="password" autocomplete="off"></label>
        <label>Recipients (e-mail, comma-separated) <input name="recipients"></label>
        <div id="alert-channel-errors"></div>
        <button type="submit">Save channel</button></form></div>
  </div>
  <div class="card wide"><div class="label">Rules</div>
    <table id="alert-rules"><thead><tr><th>Name</th><th>Condition</th><th class="num">Threshold</th><th class="num">Sustain s</th>
      <th>Scope</th><th>Severity</th><th>Channels</th><th class="num">Repeat s</th><th>Enabled</th><th></th></tr></thead><tbody></tbody></table></div>
  <div class="card wide"><div class="label">History (newest first, Astana time)</div>
    <div class="tablewrap"><table id="alerts-history"><thead><tr><th>At (Astana time)</th><th>Event</th><th>Rule</th><th>Subject</th>
      <th>By</th><th>What</th></tr></thead><tbody></tbody></table></div></div>`;
  document.querySelector("main").appendChild(section);

  const ui = {conditions: [], channels: [], rules: [], open: [], history: [], es: null};
  const active = () => section.classList.contains("active");
  const astana = ts => ts ? new Date(Date.parse(ts) + 5 * 3600e3).toISOString().slice(0, 19).replace("T", " ") + " Astana" : "—";
  const sevClass = {critical: "offline", warning: "pending", info: "sleeping"};
  const statusClass = {firing: "open", pending: "pending", resolved: "online", cleared: "", closed: ""};
  const list = v => (v || "").split(",").map(s => s.trim()).filter(Boolean);
  const form = $("#alert-rule-form");

  async function loadAll() {
    try {
      [ui.conditions, ui.channels, ui.rules, ui.open, ui.history] = await Promise.all([
        api("/api/v1/alerts/conditions"), api("/api/v1/alerts/channels"), api("/api/v1/alerts/rules"),
        api("/api/v1/alerts"), api("/api/v1/alerts/history?limit=200")]);
      ui.history.reverse();
      link.hidden = false;
      render();
    } catch (e) {
      if (e.message.startsWith("503")) { link.hidden = true; if (ui.es) ui.es.close(); return; }  // alerts.enabled: false
      toast("alerts: " + e.message, true);
    }
  }

  function render() {
    const sel = form.elements.condition, chosen = sel.value;
    if (sel.options.length !== ui.conditions.length) {
      sel.innerHTML = ui.conditions.map(c => `<option value="${esc(c.condition)}">${esc(c.condition.replaceAll("_", " "))}</option>`).join("");
      if (chosen) sel.value = chosen;
      describeCondition();
    }
    const ticked = new Set($$("#alert-rule-channels input:checked").map(i => i.value));
    $("#alert-rule-channels").innerHTML = ui.channels.map(c => `<label class="pill"><input type="checkbox" value="${esc(c.name)}"
      ${ticked.has(c.name) || (!ticked.size && c.name === "dashboard") ? "checked" : ""}> ${esc(c.name)}</label>`).join(" ");
    $("#alert-channels tbody").innerHTML = ui.channels.map(c => `<tr><td>${esc(c.name)}</td><td>${esc(c.kind)}</td>
      <td>${esc(c.kind === "webhook" ? c.url + (c.has_secret ? " (signed)" : "") : c.kind === "email" ? c.recipients.join(", ") : "this dashboard")}</td>
      <td>${c.builtin ? "" : `<button data-test-channel="${esc(c.name)}">Test</button> <button data-del-channel="${esc(c.name)}">Delete</button>`}</td></tr>`).join("");
    renderOpen();
    $("#alert-rules tbody").innerHTML = ui.rules.map(r => `<tr data-rule="${r.id}"><td>${esc(r.name)}</td><td>${esc(r.condition)}</td>
      <td class="num">${r.threshold ?? "—"}</td><td class="num">${r.sustain_s}</td>
      <td>${esc(Object.entries(r.scope).map(([k, v]) => k + ": " + v.join(", ")).join("; ") || "all")}</td>
      <td><span class="pill ${sevClass[r.severity] || ""}">${esc(r.severity)}</span></td><td>${esc(r.channels.join(", "))}</td>
      <td class="num">${r.repeat_s ?? "—"}</td><td>${r.enabled ? "yes" : "no"}</td>
      <td><button data-edit-rule="${r.id}">Edit</button> <button data-del-rule="${r.id}">Delete</button></td></tr>`).join("");
    renderHistory();
  }

  function renderOpen() {
    const firing = ui.open.filter(a => a.status === "firing").length, badge = $("#alerts-badge");
    badge.hidden = !firing; badge.textContent = String(firing); badge.className = "pill " + (firing ? "open" : "");
    $("#alerts-none").hidden = ui.open.length > 0;
    $("#alerts-open tbody").innerHTML = ui.open.map(a => `<tr data-alert="${a.id}" data-status="${esc(a.status)}">
      <td><span class="pill ${sevClass[a.severity] || ""}">${esc(a.severity)}</span></td>
      <td><span class="pill ${statusClass[a.status] || ""}">${esc(a.status)}</span></td><td>${esc(a.rule)}</td>
      <td>${esc(a.subject)}</td><td>${esc(a.message)}</td><td>${astana(a.since)}</td><td>${astana(a.fired_at)}</td>
      <td class="acked">${a.acknowledged_by ? esc(a.acknowledged_by) + " " + astana(a.acknowledged_at) : "—"}</td>
      <td>${a.acknowledged_by ? "" : `<button data-ack="${a.id}">Acknowledge</button>`}</td></tr>`).join("");
  }

  function renderHistory() {
    $("#alerts-history tbody").innerHTML = ui.history.slice(0, 200).map(e => `<tr data-event="${esc(e.event)}"><td>${astana(e.at)}</td>
      <td><span class="pill ${statusClass[e.status] || ""}">${esc(e.event)}</span></td><td>${esc(e.rule)}</td><td>${esc(e.subject)}</td>
      <td>${esc(e.actor || "")}</td><td>${esc(e.message)}</td></tr>`).join("");
  }

  function describeCondition() {
    const c = ui.conditions.find(x => x.condition === form.elements.condition.value);
    if (!c) return;
    const t = form.elements.threshold;
    t.disabled = c.threshold_means == null;
    t.placeholder = c.default == null ? "none" : String(c.default);
    $("#alert-threshold-means").textContent = c.threshold_means ? `(${c.threshold_means})` : "(none)";
    for (const k of ["sites", "racks", "owners", "models", "machines"]) form.elements["scope." + k].disabled = !c.scope.includes(k);
  }

  function ruleDoc() {
    const f = form.elements, scope = {};
    for (const k of ["sites", "racks", "owners", "models", "machines"]) { const v = list(f["scope." + k].value); if (v.length && !f["scope." + k].disabled) scope[k] = v; }
    const doc = {name: f.name.value, condition: f.condition.value, sustain_s: Number(f.sustain_s.value || 0), severity: f.severity.value,
      scope, channels: $$("#alert-rule-channels input:checked").map(i => i.value), enabled: f.enabled.checked,
      repeat_s: f.repeat_s.value ? Number(f.repeat_s.value) : null};
    if (!f.threshold.disabled && f.threshold.value !== "") doc.threshold = Number(f.threshold.value);
    return doc;
  }

  function showErrors(where, err) { $(where).innerHTML = `<p class="pill offline">${esc(err.message)}</p>`; }

  form.elements.condition.addEventListener("change", describeCondition);
  form.addEventListener("submit", async e => {
    e.preventDefault(); $("#alert-rule-errors").innerHTML = "";
    const id = form.elements.id.value;
    try {
      const r = await api(id ? `/api/v1/alerts/rules/${id}` : "/api/v1/alerts/rules", {method: id ? "PUT" : "POST", body: JSON.stringify(ruleDoc())});
      toast(`rule "${r.name}" saved`); resetForm(); loadAll();
    } catch (err) { showErrors("#alert-rule-errors", err); toast("rule: " + err.message, true); }
  });
  function resetForm() { form.reset(); form.elements.id.value = ""; $("#alert-form-title").textContent = "New rule"; describeCondition(); }
  $("#alert-rule-reset").addEventListener("click", resetForm);

  $("#alert-channel-form").addEventListener("submit", async e => {
    e.preventDefault(); $("#alert-channel-errors").innerHTML = "";
    const f = e.target.elements, doc = {kind: f.kind.value};
    if (doc.kind === "webhook") { doc.url = f.url.value; if (f.secret.value) doc.secret = f.secret.value; } else doc.recipients = list(f.recipients.value);
    try { await api(`/api/v1/alerts/channels/${encodeURIComponent(f.name.value)}`, {method: "PUT", body: JSON.stringify(doc)}); toast(`channel ${f.name.value} saved`); e.target.reset(); loadAll(); }
    catch (err) { showErrors("#alert-channel-errors", err); toast("channel: " + err.message, true); }
  });

  section.addEventListener("click", async e => {
    const b = e.target.closest("button"); if (!b) return;
    try {
      if (b.dataset.ack) {
        const a = await api(`/api/v1/alerts/${b.dataset.ack}/acknowledge`, {method: "POST"});
        toast(`acknowledged by ${a.acknowledged_by}`); loadAll();
      } else if (b.dataset.editRule) {
        const r = ui.rules.find(x => String(x.id) === b.dataset.editRule), f = form.elements;
        f.id.value = r.id; f.name.value = r.name; f.condition.value = r.condition; describeCondition();
        f.threshold.value = r.threshold ?? ""; f.sustain_s.value = r.sustain_s; f.severity.value = r.severity;
        f.repeat_s.value = r.repeat_s ?? ""; f.enabled.checked = r.enabled;
        for (const k of ["sites", "racks", "owners", "models", "machines"]) f["scope." + k].value = (r.scope[k] || []).join(", ");
        $$("#alert-rule-channels input").forEach(i => i.checked = r.channels.includes(i.value));
        $("#alert-form-title").textContent = `Edit rule ${r.id}`;
      } else if (b.dataset.delRule) {
        if (!confirm("Delete this rule? Its open alerts close.")) return;
        await api(`/api/v1/alerts/rules/${b.dataset.delRule}`, {method: "DELETE"}); toast("rule deleted"); loadAll();
      } else if (b.dataset.testChannel) {
        const d = await api(`/api/v1/alerts/channels/${encodeURIComponent(b.dataset.testChannel)}/test`, {method: "POST"});
        toast(d.status === "sent" ? `test sent to ${d.channel}` : `test to ${d.channel} failed: ${d.last_error}`, d.status !== "sent");
      } else if (b.dataset.delChannel) {
        if (!confirm(`Delete channel ${b.dataset.delChannel}?`)) return;
        await api(`/api/v1/alerts/channels/${encodeURIComponent(b.dataset.delChannel)}`, {method: "DELETE"}); loadAll();
      }
    } catch (err) { toast(err.message, true); }
  });

  // the dashboard channel: new history events arrive over SSE; the open list comes with them
  // no key in the URL: the session cookie (POST /api/v1/session, the key in a header) authenticates the stream
  async function connectStream() {
    if (ui.es) ui.es.close();
    await fetch("/api/v1/session", {method: "POST", headers: {"X-API-Key": key()}}).catch(() => null);
    ui.es = new EventSource("/api/v1/alerts/stream");
    ui.es.addEventListener("alerts", ev => { ui.open = JSON.parse(ev.data); renderOpen(); $("#alerts-live").textContent = "(live)"; });
    ui.es.addEventListener("alert", ev => {
      const e = JSON.parse(ev.data);
      if (ui.history.some(h => h.id === e.id)) return;  // already loaded with the page's last refresh
      ui.history.unshift(e); if (active()) renderHistory();
      if (e.event === "firing") toast(`ALERT ${e.severity}: ${e.message}`, e.severity !== "info");
    });
    ui.es.onerror = () => {  // a new session (it may have expired), then reconnect
      $("#alerts-live").textContent = "(reconnecting…)"; ui.es.close(); setTimeout(connectStream, 2000);
    };
  }

  link.addEventListener("click", e => { e.preventDefault(); location.hash = "alerts"; showTab("alerts"); loadAll(); });
  $("#api-key").addEventListener("change", () => { connectStream(); loadAll(); });
  connectStream(); loadAll();
  if (location.hash === "#alerts") showTab("alerts");
})();
