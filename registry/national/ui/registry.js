// The national registry's page for the authority and regulators. The key is kept in sessionStorage and sent as a
// Bearer header (never in a URL). Every form posts to the same API a script would use; a 422 is shown per field.
"use strict";

const state = { key: sessionStorage.getItem("kuat-registry-key") || "", role: "", cursor: null, dpcs: [] };
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 4000);
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined
    : JSON.stringify(options.body) });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const err = new Error(typeof data?.detail === "string" ? data.detail : `HTTP ${resp.status}`);
    err.status = resp.status;
    err.detail = data?.detail;
    throw err;
  }
  return data;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function row(values, cls = []) {
  const tr = document.createElement("tr");
  values.forEach((v, i) => tr.appendChild(v instanceof Node ? wrap(v) : cell(v, cls[i])));
  return tr;
}

function wrap(node) {
  const td = document.createElement("td");
  td.appendChild(node);
  return td;
}

const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");

// ------------------------------------------------------------------ sign in

async function signIn(key) {
  state.key = key;
  try {
    const who = await api("/api/v1/national/whoami");
    state.role = who.role;
    sessionStorage.setItem("kuat-registry-key", key);
    $("#who").textContent = `${who.name} (${who.role})`;
    $("#login").hidden = true;
    $("#tabs").hidden = $("#app").hidden = $("#logout").hidden = false;
    document.body.dataset.role = who.role;
    $$("#tab-reference form button, #applications button").forEach((b) => (b.disabled = who.role !== "authority"));
    await loadReference();
    await search();
  } catch (err) {
    sessionStorage.removeItem("kuat-registry-key");
    $("#login-error").textContent = err.status === 401 || err.status === 403
      ? "This key does not open the registry (authority or regulator key needed)." : err.message;
  }
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("#key").value.trim());
});

$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem("kuat-registry-key");
  location.reload();
});

// ------------------------------------------------------------------ tabs

$$("#tabs button").forEach((btn) => btn.addEventListener("click", () => showTab(btn.dataset.tab)));

function showTab(name) {
  $$("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $$(".tab").forEach((t) => (t.hidden = t.id !== `tab-${name}`));
  ({ machines: search, applications: loadApplications, violations: loadEpisodes, chain: loadChain,
     reference: loadReference })[name]();
}

// ------------------------------------------------------------------ machines

async function search(more = false) {
  const form = new FormData($("#search-form"));
  const params = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v) params.set(k, v);
  params.set("limit", "100");
  if (more && state.cursor) params.set("after_id", state.cursor);
  $("#search-error").textContent = "";
  try {
    const page = await api(`/api/v1/national/hscs?${params}`);
    const body = $("#machines tbody");
    if (!more) body.innerHTML = "";
    for (const m of page.items) {
      body.appendChild(row([m.serial, m.mac, m.model, m.dpc, `${m.owner_name} (${m.owner_bin})`, m.status,
        m.registry_number, m.last_seen_at ? `${when(m.last_seen_at)} at ${m.last_seen_dpc}` : "", m.reason],
        [null, null, null, null, null, `status-${m.status}`]));
    }
    state.cursor = page.next_cursor;
    $("#more").hidden = page.next_cursor === null;
  } catch (err) {
    $("#search-error").textContent = Array.isArray(err.detail) ? err.detail.map((d) => d.msg).join("; ")
      : err.message;
  }
}

$("#search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
$("#more").addEventListener("click", () => search(true));

// ------------------------------------------------------------------ applications

async function loadApplications() {
  const items = await api("/api/v1/national/applications?status=submitted&limit=500");
  const body = $("#applications tbody");
  body.innerHTML = "";
  for (const a of items) {
    const box = document.createElement("div");
    box.className = "decision";
    const reason = document.createElement("input");
    reason.placeholder = "reason (required to reject)";
    reason.className = "reason";
    const include = document.createElement("button");
    include.textContent = "Include";
    include.className = "include";
    const reject = document.createElement("button");
    reject.textContent = "Reject";
    reject.className = "reject";
    const error = document.createElement("span");
    error.className = "error";
    [include, reject].forEach((b) => (b.disabled = state.role !== "authority"));
    include.addEventListener("click", () => decide(a.id, "include", reason.value, error));
    reject.addEventListener("click", () => decide(a.id, "reject", reason.value, error));
    box.append(reason, include, reject, error);
    const tr = row([a.id, a.kind, a.serial, a.dpc, `${a.owner_name} (${a.owner_bin})`, when(a.submitted_at), box]);
    tr.dataset.serial = a.serial;
    body.appendChild(tr);
  }
  if (!items.length) body.appendChild(row(["", "", "nothing waiting"]));
}

async function decide(id, decision, reason, errorEl) {
  try {
    const out = await api(`/api/v1/authority/applications/${id}/decision`, { method: "POST",
      body: { decision, reason: reason || null } });
    toast(`${out.serial}: ${out.status}`);
    await loadApplications();
  } catch (err) {
    errorEl.textContent = Array.isArray(err.detail) ? err.detail.map((d) => d.msg).join("; ") : err.message;
  }
}

// ------------------------------------------------------------------ violations

async function loadEpisodes() {
  const open = $("#open-only").checked ? "&open_only=true" : "";
  const items = await api(`/api/v1/national/episodes?limit=1000${open}`);
  const body = $("#episodes tbody");
  body.innerHTML = "";
  for (const e of items) {
    body.appendChild(row([e.id, e.kind, e.dpc, e.serial || e.identity, when(e.started_at),
      e.ended_at ? when(e.ended_at) : "still hashing", `${Math.round(e.duration_s)} s`,
      `${e.energy_wh.toFixed(1)} Wh`, e.max_power_w === null ? "" : `${Math.round(e.max_power_w)} W`, e.detail]));
  }
}

$("#open-only").addEventListener("change", loadEpisodes);

// ------------------------------------------------------------------ chain

async function loadChain() {
  const [head, key] = await Promise.all([api("/api/v1/audit/head"), api("/api/v1/audit/public-key")]);
  $("#chain-head").textContent = JSON.stringify(head, null, 2);
  $("#chain-key").textContent = key.public_key_pem;
}

$("#verify-btn").addEventListener("click", async () => {
  $("#chain-result").textContent = "checking...";
  const r = await api("/api/v1/national/chain/verify");
  $("#chain-result").textContent = r.ok ? `intact: ${r.events} events, ${r.rows_checked} rows checked`
    : `BROKEN: ${JSON.stringify(r.first_broken)}`;
  $("#chain-result").dataset.ok = String(r.ok);
});

// ------------------------------------------------------------------ reference rows and their forms

async function loadReference() {
  const [licensees, dpcs, pools] = await Promise.all([api("/api/v1/authority/licensees"),
    api("/api/v1/authority/dpcs"), api("/api/v1/authority/pools")]);
  const lb = $("#licensees tbody");
  lb.innerHTML = "";
  licensees.forEach((l) => lb.appendChild(row([l.bin, l.name, l.licence_number, l.subtype,
    `${l.valid_from} .. ${l.valid_to}`, l.status])));
  const db = $("#dpcs tbody");
  db.innerHTML = "";
  dpcs.forEach((d) => db.appendChild(row([d.code, d.name, d.zone, d.capacity_mw])));
  const pb = $("#pools tbody");
  pb.innerHTML = "";
  pools.forEach((p) => pb.appendChild(row([p.name, p.endpoints.join(" "), p.accreditation_number,
    `${p.valid_from} .. ${p.valid_to}`])));
  $$(".licensee-select").forEach((sel) => {
    sel.innerHTML = "";
    licensees.filter((l) => l.subtype === "I").forEach((l) => sel.add(new Option(`${l.name} (${l.bin})`, l.id)));
  });
  $$(".dpc-select").forEach((sel) => {
    const keep = sel.value;
    sel.innerHTML = '<option value="">any</option>';
    dpcs.filter((d) => d.code).forEach((d) => sel.add(new Option(`${d.code} ${d.name}`, d.code)));
    sel.value = keep;
  });
}

function formBody(form) {
  const body = {};
  for (const el of $$("input, select, textarea", form)) {
    if (!el.name || el.value === "") continue;
    if (el.hasAttribute("data-number")) body[el.name] = Number(el.value);
    else if (el.hasAttribute("data-list")) body[el.name] = el.value.split(/\s+/).filter(Boolean);
    else body[el.name] = el.value;
  }
  return body;
}

function showFieldErrors(form, detail) {
  for (const item of detail) {
    const name = item.loc[item.loc.length - 1] === "body" ? null : item.loc[1];
    const input = name ? $(`[name="${name}"]`, form) : null;
    const msg = document.createElement("span");
    msg.className = "field-error";
    msg.dataset.field = name || "";
    msg.textContent = item.msg;
    if (input) {
      input.classList.add("invalid");
      input.closest("label").appendChild(msg);
    } else {
      form.querySelector("button").before(msg);
    }
  }
}

$$("#tab-reference form").forEach((form) => form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $$(".field-error", form).forEach((e) => e.remove());
  $$(".invalid", form).forEach((e) => e.classList.remove("invalid"));
  try {
    await api(form.dataset.path, { method: "POST", body: formBody(form) });
    toast("created");
    form.reset();
    await loadReference();
  } catch (err) {
    if (Array.isArray(err.detail)) showFieldErrors(form, err.detail);
    else showFieldErrors(form, [{ loc: ["body"], msg: err.message }]);
  }
}));

if (state.key) signIn(state.key);
