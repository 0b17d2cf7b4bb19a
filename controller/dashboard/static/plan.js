// Kuat ops dashboard, Plan tab: tomorrow's value of energy per hour, the proposed bids and their constraints, and
// after the session closes (10:00 Astana) the results against the bids. Loaded after app.js; uses its helpers
// ($, api, esc, fmt, toast, showTab, state) and adds its own tab, so index.html and app.js need no other change.
"use strict";
(() => {
  const nav = document.querySelector("header nav");
  const link = document.createElement("a");
  link.href = "#plan"; link.dataset.tab = "plan"; link.textContent = "Plan";
  nav.appendChild(link);
  const section = document.createElement("section");
  section.id = "tab-plan"; section.className = "tab";
  section.innerHTML = `
  <div class="toolbar"><span id="plan-title" class="label">Plan</span> <span id="plan-phase" class="pill"></span>
    <button id="plan-freeze">Freeze bids for submission</button> <a href="#" id="plan-export" hidden>Export CSV</a>
    <a href="#" id="plan-export-json" hidden>JSON</a> <span id="plan-set" class="muted"></span></div>
  <div id="plan-errors"></div>
  <div class="cards">
    <div class="card"><div class="label">Bid</div><div class="value" id="plan-bid">—</div><div class="sub">prepayment <span id="plan-prepay">—</span></div></div>
    <div class="card"><div class="label">Expected energy</div><div class="value" id="plan-energy">—</div><div class="sub">cost <span id="plan-cost">—</span></div></div>
    <div class="card"><div class="label">Expected margin</div><div class="value" id="plan-margin">—</div><div class="sub">revenue <span id="plan-revenue">—</span></div></div>
    <div class="card"><div class="label">Expected hash rate</div><div class="value" id="plan-hash">—</div><div class="sub">if every step wins <span id="plan-hash-all">—</span></div></div>
  </div>
  <div class="card wide"><div class="label">Value of energy per hour, Astana time (blocks of the fleet's curve, KZT per MWh; dashed: connection)</div>
    <canvas id="plan-curve" height="260"></canvas><div id="plan-econ" class="legend"></div></div>
  <div class="card wide"><div class="label">What each constraint cost (expected margin if lifted alone)</div><div id="plan-costs"></div>
    <div id="plan-notes" class="muted"></div></div>
  <div class="card wide"><div class="label">Proposed bids</div><div class="tablewrap"><table id="plan-steps"><thead><tr>
    <th>Hour</th><th class="num">Step</th><th class="num">MWh</th><th class="num">Price KZT/MWh</th><th class="num">Value KZT/MWh</th>
    <th class="num">P(win)</th><th>Price rule</th><th>Bounded by</th></tr></thead><tbody></tbody></table></div></div>
  <div class="card wide" id="plan-results-card"><div class="label">Results against the bids <span id="plan-results-state" class="muted"></span></div>
    <table id="plan-results"><thead><tr><th>Hour</th><th class="num">Bid MWh</th><th class="num">Won MWh</th>
    <th class="num">Used MWh</th><th class="num">Paid KZT</th></tr></thead><tbody></tbody></table></div>`;
  document.querySelector("main").appendChild(section);

  const plan = {doc: null, timer: null};
  const kzt = v => v == null ? "—" : Math.round(v).toLocaleString("en-US") + " KZT";
  const mwh = v => v == null ? "—" : Number(v).toFixed(3) + " MWh";
  const active = () => section.classList.contains("active");
  // Astana is UTC+5 all year (since 2024-03-01): shown as such whatever the browser's own zone is
  const astana = ts => new Date(Date.parse(ts) + 5 * 3600e3).toISOString().slice(0, 16).replace("T", " ") + " Astana";

  async function load() {
    const site = state.snapshot && state.snapshot.site && state.snapshot.site.name;
    if (!site) { clearTimeout(plan.timer); plan.timer = setTimeout(load, 1000); return; }
    try { plan.doc = await api("/api/v1/planner/view?site=" + encodeURIComponent(site)); render(plan.doc); }
    catch (e) { toast("plan: " + e.message, true); }
    clearTimeout(plan.timer);
    if (active()) plan.timer = setTimeout(load, 30000);
  }

  function render(v) {
    $("#plan-title").textContent = `Plan for ${v.day} (Astana) · ${v.site}`;
    const ph = $("#plan-phase");
    ph.textContent = v.phase === "bidding" ? `bidding: session closes ${astana(v.session_close)}` : "session closed: results";
    ph.className = "pill " + (v.phase === "bidding" ? "online" : "sleeping");
    $("#plan-errors").innerHTML = (v.errors || []).map(e => `<p class="pill offline">${esc(e.loc)}: ${esc(e.msg)}</p>`).join("");
    $("#plan-set").textContent = v.bid_set_id ? `frozen bid set ${v.bid_set_id}` : "no bid set frozen yet";
    for (const [id, f] of [["#plan-export", "csv"], ["#plan-export-json", "json"]]) {
      const a = $(id); a.hidden = !v.bid_set_id;
      if (v.bid_set_id) a.href = `/api/v1/planner/bids/${v.bid_set_id}/export?format=${f}`;
    }
    const b = v.bids, s = b && b.summary;
    $("#plan-bid").textContent = s ? mwh(s.bid_mwh) : "—";
    $("#plan-prepay").textContent = s ? kzt(s.prepayment_kzt) : "—";
    $("#plan-energy").textContent = s ? mwh(s.expected_mwh) : "—";
    $("#plan-cost").textContent = s ? kzt(s.expected_cost_kzt) : "—";
    $("#plan-margin").textContent = s ? kzt(s.expected_margin_kzt) : "—";
    $("#plan-revenue").textContent = s ? kzt(s.expected_revenue_kzt) : "—";
    $("#plan-hash").textContent = s ? fmt.ths(s.expected_avg_ths) : "—";
    $("#plan-hash-all").textContent = s ? fmt.ths(s.all_win_avg_ths) : "—";
    $("#plan-costs").innerHTML = s ? Object.entries(s.constraint_costs_kzt).map(([k, c]) =>
      `<span class="pill ${c > 0 ? "open" : ""}" data-constraint="${esc(k)}">${esc(k)}: ${kzt(c)}</span>`).join(" ") : "";
    $("#plan-notes").textContent = b ? (b.notes || []).join("; ") : "";
    const e = v.curve && v.curve.economics;
    const floor = b && Object.values(b.floors)[0];
    $("#plan-econ").textContent = e ? `hashprice ${e.hashprice_usd_per_ph_day} USD/PH/day (${e.hashprice_source}) · ${e.usd_kzt} KZT/USD (${e.usd_source}) · ` +
      `pool fee ${(e.pool_fee * 100).toFixed(1)} % · mining fee ${e.mining_fee_kzt_per_kwh} KZT/kWh (${e.mining_fee_source})` +
      (floor ? ` · floor ${Math.round(floor.kzt_per_mwh).toLocaleString("en-US")} KZT/MWh (${floor.source})` : "") : "";
    drawCurve($("#plan-curve"), v.curve, floor ? floor.kzt_per_mwh : 0, b);
    const binding = {}; (b ? b.hours : []).forEach(h => binding[h.hour] = h.binding);
    $("#plan-steps tbody").innerHTML = (b ? b.steps : []).map(st => `<tr><td>${st.hour}</td><td class="num">${st.step}</td>
      <td class="num">${st.quantity_mwh.toFixed(3)}</td><td class="num">${Math.round(st.price_kzt_per_mwh).toLocaleString("en-US")}</td>
      <td class="num">${Math.round(st.value_kzt_per_mwh).toLocaleString("en-US")}</td><td class="num">${st.win_probability.toFixed(2)}</td>
      <td>${esc(st.price_rule)}</td><td>${esc(binding[st.hour] || "")}</td></tr>`).join("");
    const after = v.phase === "results";
    $("#plan-results-card").hidden = !after;
    $("#plan-results-state").textContent = v.results_published ? "" : "(not published yet: import them, POST /api/v1/planner/results)";
    $("#plan-results tbody").innerHTML = after && v.ledger ? v.ledger.hours.map(h => `<tr><td>${h.hour}</td>
      <td class="num">${h.bid_mwh.toFixed(3)}</td><td class="num">${h.won_mwh == null ? "—" : h.won_mwh.toFixed(3)}</td>
      <td class="num">${h.used_mwh == null ? "—" : h.used_mwh.toFixed(3)}</td><td class="num">${h.won_cost_kzt == null ? "—" : Math.round(h.won_cost_kzt).toLocaleString("en-US")}</td></tr>`).join("") : "";
  }

  function colour(value, floor, top) {  // below the floor: red; from the floor up: amber to green
    if (value < floor) return "#f85149";
    const t = Math.max(0, Math.min(1, (value - floor) / Math.max(top - floor, 1)));
    return `hsl(${35 + 95 * t}, 70%, ${45 + 5 * t}%)`;
  }

  function drawCurve(canvas, curve, floor, bids) {
    const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = canvas.clientHeight || 260;
    canvas.width = W * dpr; canvas.height = H * dpr;
    const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, W, H);
    g.font = "11px system-ui"; g.fillStyle = "#8b98a5";
    if (!curve) { g.fillText("no curve: see the errors above", 20, 30); canvas.dataset.blocks = "0"; return; }
    const hours = curve.hours, pad = {l: 60, r: 10, t: 10, b: 22};
    const top = Math.max(...hours.map(h => Math.max(h.connection_mwh, h.blocks.reduce((a, b) => a + b.mwh, 0))), 1e-6) * 1.1;
    const vmax = Math.max(...hours.flatMap(h => h.blocks.map(b => b.value_kzt_per_mwh)), floor + 1);
    const bw = (W - pad.l - pad.r) / hours.length, y = q => H - pad.b - (H - pad.t - pad.b) * q / top;
    let drawn = 0;
    for (let i = 0; i <= 4; i++) { const q = top * i / 4; g.fillStyle = "#8b98a5"; g.fillText(q.toFixed(3) + " MWh", 2, y(q) + 4); }
    hours.forEach((h, i) => {
      let acc = 0; const x = pad.l + i * bw;
      for (const b of h.blocks) {
        g.fillStyle = colour(b.value_kzt_per_mwh, floor, vmax);
        g.fillRect(x + 1, y(acc + b.mwh), bw - 2, y(acc) - y(acc + b.mwh)); acc += b.mwh; drawn++;
      }
      const bid = bids ? bids.steps.filter(s => s.hour === h.hour).reduce((a, s) => a + s.quantity_mwh, 0) : 0;
      if (bid > 0) { g.strokeStyle = "#e6edf3"; g.lineWidth = 2; g.strokeRect(x + 2, y(bid), bw - 4, y(0) - y(bid)); }
      g.setLineDash([4, 3]); g.strokeStyle = "#f0b429"; g.lineWidth = 1.5; g.beginPath();
      g.moveTo(x, y(h.connection_mwh)); g.lineTo(x + bw, y(h.connection_mwh)); g.stroke(); g.setLineDash([]);
      g.strokeStyle = g.fillStyle = cssVar("--muted"); g.lineWidth = 1;  // a tick under every hour, labelled every 2
      g.beginPath(); g.moveTo(x, y(0)); g.lineTo(x, y(0) + (i % 2 === 0 ? 6 : 3)); g.stroke();
      if (i % 2 === 0) g.fillText(String(h.hour - 1).padStart(2, "0") + ":00", x + 2, H - 6);
    });
    const title = "hour (Astana time)"; g.fillText(title, W - pad.r - g.measureText(title).width, pad.t + 10);
    canvas.dataset.blocks = String(drawn); canvas.dataset.ticks = String(hours.length);
  }

  link.addEventListener("click", e => { e.preventDefault(); location.hash = "plan"; showTab("plan"); load(); });
  $("#plan-freeze").addEventListener("click", async () => {
    if (!plan.doc || !confirm(`Freeze the bids for ${plan.doc.day} as the set to submit?`)) return;
    try { const r = await api("/api/v1/planner/bids", {method: "POST", body: JSON.stringify({day: plan.doc.day})}); toast(`bid set ${r.id} frozen`); load(); }
    catch (err) { toast("freeze: " + err.message, true); }
  });
  for (const id of ["#plan-export", "#plan-export-json"]) {
    $(id).addEventListener("click", e => { e.preventDefault(); downloadExport(e.target.href); });
  }
  async function downloadExport(href) {  // the export needs the key in a header: fetch it, then save as a file
    try {
      const r = await fetch(href, {headers: {"X-API-Key": key()}});
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      const blob = await r.blob(), a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = (r.headers.get("content-disposition") || "").split("filename=")[1]?.replace(/"/g, "") || "bids";
      a.click(); URL.revokeObjectURL(a.href);
    } catch (err) { toast("export: " + err.message, true); }
  }
  window.addEventListener("resize", () => active() && plan.doc && render(plan.doc));
  if (location.hash === "#plan") { showTab("plan"); load(); }
})();
