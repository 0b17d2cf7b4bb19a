// Kuat ops dashboard, Reports tab: the money side's monthly report per licensee (energy by source, mining fee,
// income by asset, sale share, expected vs distributed), the values table's readiness, downloads, and the
// commercial meter beside the quota ledger. Uses app.js's api(), key(), esc() and toast(). Downloads fetch with
// the X-API-Key header and save a Blob: the key never goes into a URL.
"use strict";
(() => {
  const M = "/api/v1/money";
  const prevMonth = () => { const d = new Date(); d.setDate(1); d.setMonth(d.getMonth() - 1); return d.toISOString().slice(0, 7); };
  const monthInput = $("#rep-month");
  if (!monthInput.value) monthInput.value = prevMonth();
  const table = (head, rows) => `<table><thead><tr>${head.map(h => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${
    rows.map(r => `<tr>${r.map(c => `<td>${esc(c)}</td>`).join("")}</tr>`).join("") || `<tr><td colspan="${head.length}" class="muted">none</td></tr>`}</tbody></table>`;
  const card = (title, html, id = "") => `<div class="card wide" ${id ? `id="${id}"` : ""}><div class="label">${esc(title)}</div>${html}</div>`;

  async function download(path, name) {
    try {
      const r = await fetch(path, {headers: {"X-API-Key": key()}});
      if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a"); a.href = url; a.download = name; document.body.appendChild(a); a.click();
      setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
      toast(`downloaded ${name}`);
    } catch (e) { toast("download: " + e.message, true); }
  }

  async function loadLicensees() {
    const sel = $("#rep-licensee"), keep = sel.value;
    const rows = await api(M + "/licensees");
    sel.innerHTML = rows.map(l => `<option value="${esc(l.bin)}">${esc(l.name || l.bin)} (${esc(l.bin)})</option>`).join("");
    if (keep && rows.some(l => l.bin === keep)) sel.value = keep;
  }

  async function loadStatus() {
    try {
      const s = await api(`${M}/status?month=${monthInput.value}`);
      const bad = s.state === "warning" || s.state === "late";
      $("#rep-status").innerHTML = `<div class="label">Values table of ${esc(s.month)} (due ${esc(s.due)})</div>
        <span id="rep-readiness" class="pill ${bad ? "offline" : s.state === "ready" ? "online" : ""}">${esc(s.state)}</span>
        ${s.missing ? `${s.missing} of ${s.cells} values lack inputs${bad ? ": import them before the 10th" : ""}
          <div class="muted">${(s.first_missing || []).slice(0, 3).map(esc).join("<br>")}</div>` : "all inputs present"}`;
    } catch (e) { $("#rep-status").textContent = "status: " + e.message; }
  }

  function render(r) {
    const shares = r.sale_share.map(s => [s.asset, s.period, s.sold, s.via_aifc, s.share == null ? "—" : (100 * s.share).toFixed(2) + " %",
      s.required, s.status, s.shortfall_units, s.shortfall_kzt ?? "—"]);
    $("#rep-body").innerHTML =
      card(`${r.name || r.licensee} (${r.licensee}) · ${r.month}`, `<div class="cards">
        <div class="card"><div class="label">Energy</div><div class="value" id="rep-energy">${esc(r.energy_total_kwh)} kWh</div></div>
        <div class="card"><div class="label">Mining fee</div><div class="value" id="rep-fee">${esc(r.fee.total_kzt)} ₸</div></div>
        <div class="card"><div class="label">Income</div><div class="value" id="rep-income">${esc(r.income.total_kzt)} ₸</div></div></div>`) +
      card("Energy by source (Astana calendar days)", table(["Source", "kWh"], r.energy.map(e => [e.source, e.kwh])), "rep-energy-table") +
      card("Mining fee", table(["Rate set", "Source", "Basis", "₸/kWh", "kWh", "Fee ₸"],
        r.fee.lines.map(f => [f.rate_set, f.source, f.basis, f.rate, f.kwh, f.fee_kzt])), "rep-fee-table") +
      card("Income by asset", table(["Asset", "Units", "₸"], r.income.by_asset.map(a => [a.asset, a.units, a.kzt])), "rep-income-table") +
      card("Income by distribution", table(["Date", "Asset", "Quantity", "Value ₸", "Method", "Income ₸", "Missing"],
        r.income.lines.map(x => [x.day, x.asset, x.quantity, x.value_kzt ?? "—", x.method ?? "—", x.income_kzt ?? "—", x.missing ?? ""]))) +
      card("Sale share (AIFC-licensed exchanges)", table(["Asset", "Period", "Sold", "Via AIFC", "Share", "Required", "Status", "Short units", "Short ₸"], shares), "rep-share-table") +
      card("Expected (measured hash rate) vs distributed", table(["Asset", "TH/s·days", "Expected", "Distributed", "Deviation %", "Flag"],
        r.expected_vs_distributed.map(d => [d.asset, d.ths_days, d.expected ?? "—", d.distributed, d.deviation_pct ?? "—", d.flagged ? "CHECK" : "ok"]))) +
      (r.flags.length || r.fee.flags.length ? card("Flags", r.flags.concat(r.fee.flags).map(f => `<div>${esc(f)}</div>`).join("")) : "");
  }

  let reportSeq = 0;  // answers can arrive out of order (a licensee or month changed while one was loading): latest wins
  async function loadReport() {
    const bin = $("#rep-licensee").value, month = monthInput.value, mine = ++reportSeq;
    if (!bin || !month) { $("#rep-body").innerHTML = "<p class='muted'>no licensee visible to this key</p>"; return; }
    try { const r = await api(`${M}/reports/${month}/${bin}`); if (mine === reportSeq) render(r); }
    catch (e) { if (mine === reportSeq) toast("report: " + e.message, true); }
  }

  async function loadReports() {
    try { await loadLicensees(); } catch (e) { toast("reports: " + e.message, true); return; }
    await Promise.all([loadStatus(), loadReport()]);
  }

  async function loadMeter() {
    const site = $("#site-name").textContent.trim();
    if (!site) return;
    try {
      // the Reports tab's month (Astana days), up to today
      const [y, m] = monthInput.value.split("-").map(Number), last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
      const today = new Date().toISOString().slice(0, 10), end = last < today ? last : today;
      const r = await api(`${M}/meter/${encodeURIComponent(site)}?start=${monthInput.value}-01&end=${end}`);
      const all = r.sources.flatMap(s => s.rows.filter(x => x.meter_kwh != null || x.kuat_kwh != null).map(x => ({s: s.source, x})));
      const metered = all.filter(({x}) => x.meter_kwh != null);
      const rows = (metered.length ? metered : all).map(({s, x}) => [fmt.hour(x.hour), s, x.meter_kwh ?? "—", x.kuat_kwh ?? "—", x.diff_kwh ?? "—", x.diff_pct ?? "—", x.status]);
      $("#meter tbody").innerHTML = rows.slice(0, 48).map(c => `<tr>${c.map((v, i) => `<td class="${i > 1 && i < 6 ? "num" : ""}">${esc(v)}</td>`).join("")}</tr>`).join("")
        || "<tr><td colspan='7' class='muted'>no commercial meter readings imported for these hours</td></tr>";
      $("#meter-summary").textContent = r.sources.map(s => `${s.source}: ${s.totals.diff_kwh ?? "—"} kWh (${s.totals.diff_pct ?? "—"} %), suggested margin ${(100 * s.suggested_margin).toFixed(2)} %`).join(" · ")
        + ` · margin in use ${(100 * r.margin_in_use).toFixed(2)} %`;
    } catch (e) { $("#meter-summary").textContent = e.message; }
  }

  const bin = () => $("#rep-licensee").value, month = () => monthInput.value;
  $("#rep-load").addEventListener("click", loadReport);
  $("#rep-licensee").addEventListener("change", loadReport);
  monthInput.addEventListener("change", () => { loadStatus(); loadReport(); });
  $("#rep-csv").addEventListener("click", () => download(`${M}/reports/${month()}/${bin()}.csv`, `kuat-report-${bin()}-${month()}.csv`));
  $("#rep-xlsx").addEventListener("click", () => download(`${M}/reports/${month()}/${bin()}.xlsx`, `kuat-report-${bin()}-${month()}.xlsx`));
  $("#rep-evidence").addEventListener("click", () => download(`${M}/reports/${month()}/${bin()}/evidence.xlsx`, `kuat-sale-share-evidence-${bin()}-${month()}.xlsx`));
  $("#rep-values").addEventListener("click", () => download(`${M}/values/${month()}.xlsx`, `kuat-values-${month()}.xlsx`));
  $$("nav a[data-tab=reports]").forEach(a => a.addEventListener("click", loadReports));
  $$("nav a[data-tab=quota]").forEach(a => a.addEventListener("click", loadMeter));
  if ((location.hash || "").slice(1) === "reports") loadReports();
  if ((location.hash || "").slice(1) === "quota") setTimeout(loadMeter, 1000);
  window.kuatReports = {loadReports, loadMeter};
})();
