"use strict";
// The wall: one slim payload pushed by the worker's broadcaster (streams/display/broadcast.py).
// Every figure is a figure of /api/ports, formatted; "Closed" and the sensors' age use the monitor's
// clock (payload.now: the wall clock, or the newest watermark when a replay runs ahead).
const STALE_AFTER_MS = 5000;
let meta = {}, last = 0, errored = false, lastData = null;
const esc = s => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
  c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const nil = x => x === null || x === undefined;
const fmt = (x, d) => nil(x) ? "–" : Number(x).toFixed(d || 0);
const min = s => nil(s) ? null : s / 60;

function wanted() {
  const single = location.pathname.match(/^\/port\/([^/]+)/);
  if (single) return [decodeURIComponent(single[1])].filter(s => s in meta);
  const q = new URLSearchParams(location.search).get("ports");
  if (!q) return Object.keys(meta);
  const asked = q.split(",").map(s => s.trim()).filter(Boolean);
  return Object.keys(meta).filter(s => asked.includes(s));
}

// A figure: its value and unit in one element with an accessible name; when abnormal, a mark (▲) and a
// word beside it, on an Okabe-Ito background: never colour alone.
function fig(id, label, value, unit, abnormal, word) {
  const text = `${value} ${unit}`.trim();
  const name = `${label}: ${text}${abnormal ? ", " + (word || "above target") : ""}`;
  const mark = abnormal ? `<span class="mark" aria-hidden="true">▲ </span>` : "";
  return `<span class="v${abnormal ? " abn" + (abnormal === "bad" ? " bad" : "") : ""}">${mark}` +
    `<span data-fig="${id}" role="img" aria-label="${esc(name)}">${esc(text)}</span></span>`;
}

function spark(id, series, label) {
  const pts = [], n = (series || []).length, vals = (series || []).filter(v => !nil(v));
  const hi = Math.max(1, ...vals);
  (series || []).forEach((v, i) => {
    if (nil(v)) return;
    pts.push(`${(n > 1 ? i / (n - 1) * 100 : 50).toFixed(2)},${(19 - v / hi * 18).toFixed(2)}`);
  });
  return `<svg class="spark" data-spark="${id}" data-points="${pts.length}" viewBox="0 0 100 20" preserveAspectRatio="none"` +
    ` role="img" aria-label="${esc(label)}, last 12 hours, ${pts.length} quarter-hour points"><polyline points="${pts.join(" ")}"/></svg>`;
}

function ageOf(wm, now) {
  if (!wm) return [null, "min ago", null];
  const mins = Math.max(0, Math.round((Date.parse(now) - Date.parse(wm)) / 60000));
  const [a, u] = mins < 120 ? [mins, "min ago"] : mins < 2880 ? [Math.round(mins / 60), "h ago"] : [Math.round(mins / 1440), "days ago"];
  return [a, u, mins];
}

function tile(slug, r, data, alerts) {
  const m = meta[slug], t = m.targets || {}, open = (data.open || {})[slug] !== false;
  const q = r.queue || {outbound: 0, inbound: 0}, f = r.forecast || {}, li = r.lanes_in_use || {}, lanes = r.lanes || {};
  const fo = f.outbound || {}, fi = f.inbound || {}, wb = r.wait_by_booking || {}, sc = r.scans || {};
  const tr = r.trends || {}, has = !!r.watermark;
  const over = (v, lim) => has && !nil(v) && !nil(lim) && v > lim;
  const [age, ageUnit, mins] = ageOf(r.watermark, data.now);
  const silent = open && (mins === null || mins > 15);
  const firing = alerts.filter(a => a.port === slug);
  const badge = firing.length ? `<span class="badge bad" data-badge="alert">▲ ALERT ${firing.length > 1 ? "×" + firing.length : ""}</span>`
    : open ? "" : `<span class="badge closed" data-badge="closed">Closed</span>`;
  const flagged = sc.completed ? 100 * sc.flagged / sc.completed : null;
  const insp = min(r.inspection_truck_seconds), wait = min(r.wait_seconds);
  const row = (id, label, value, unit, abn, series, slabel) =>
    `<div class="tr"><span class="lbl">${label}</span>${fig(id, label, value, unit, abn)}${spark(id, series, slabel)}</div>`;
  return `<section class="tile${firing.length ? " alerting" : ""}" data-port="${slug}" aria-label="${esc(m.name)}${firing.length ? ", alert firing" : ""}"><div class="in">` +
    `<div class="head"><h2>${esc(m.name)}</h2>${badge}</div>` +
    `<div class="fc"><span class="h">Forecast</span><span class="h">Outbound</span><span class="h">Inbound</span>` +
    `<span class="lbl">Wait</span>` +
      `<span class="big">${fig("pred_out", "Predicted wait outbound", fmt(min(fo.predicted_wait_seconds)), "min", over(min(fo.predicted_wait_seconds), t.wait_minutes))}</span>` +
      `<span class="big">${fig("pred_in", "Predicted wait inbound", fmt(min(fi.predicted_wait_seconds)), "min", over(min(fi.predicted_wait_seconds), t.wait_minutes))}</span>` +
    `<span class="lbl">Clear in</span>${fig("clear_out", "Time to clear outbound", fmt(min(fo.clear_seconds)), "min")}` +
      `${fig("clear_in", "Time to clear inbound", fmt(min(fi.clear_seconds)), "min")}` +
    `<span class="lbl">Lanes</span>${fig("lanes_out", "Lanes in use outbound", `${fmt(li.outbound)}/${fmt(lanes.outbound)}`, "")}` +
      `${fig("lanes_in", "Lanes in use inbound", `${fmt(li.inbound)}/${fmt(lanes.inbound)}`, "")}</div>` +
    row("throughput", "Throughput", fmt(r.throughput_per_hour), "veh/h", false, tr.crossings, "Crossings per quarter hour") +
    row("queue_out", "Queue out", fmt(q.outbound), "veh", over(q.outbound, t.queue_vehicles), tr.queue_outbound, "Queue outbound") +
    row("queue_in", "Queue in", fmt(q.inbound), "veh", over(q.inbound, t.queue_vehicles), tr.queue_inbound, "Queue inbound") +
    row("wait", "Wait 1 h", fmt(wait, 1), "min", over(wait, t.wait_minutes), (tr.wait_seconds || []).map(min), "Average wait of the last hour") +
    `<div class="small">` +
      `<span>Booked ${fig("wait_booked", "Average wait booked", fmt(min(wb.booked), 1), "min")}</span>` +
      `<span>Walk-up ${fig("wait_walk_up", "Average wait walk-up", fmt(min(wb.walk_up), 1), "min")}</span>` +
      `<span>Flagged ${fig("flagged", "Flagged scans", fmt(flagged, 1), "%")}</span>` +
      `<span>Truck insp. ${fig("inspection", "Truck inspection last hour", fmt(insp, 1), "min", over(insp, t.truck_inspection_minutes))}</span>` +
      `<span>Today ${fig("today", "Crossings today", fmt(r.today), "veh")}</span>` +
      `<span>Peak ${esc(r.peak_day ? r.peak_day.date.slice(5) : "–")} ${fig("peak", "Peak day crossings", fmt(r.peak_day ? r.peak_day.crossings : null), "veh")}</span>` +
      `<span>${open ? "Sensors" : "Closed, last"} ${fig("watermark", open ? "Sensors last heard" : "Closed, sensors last heard", fmt(age), ageUnit, silent ? "bad" : false, "sensors silent")}</span>` +
    `</div></div></section>`;
}

function overview(data, alerts) {
  const a = data.alerts || {};
  const state = a.state === "ok" ? `Alertmanager connected: ${alerts.length ? alerts.length + " firing" : "no alert firing"}`
    : a.state === "unreachable" ? "▲ Alertmanager cannot be reached" : a.state === "off" ? "No Alertmanager configured" : "Alertmanager: connecting";
  return `<section class="tile overview" aria-label="Overview"><div class="in"><h2>Overview</h2>` +
    `<p data-overview="alerts">${esc(state)}</p>` +
    `<p><span class="abn"><span aria-hidden="true">▲ </span>orange</span> above the port's target</p>` +
    `<p><span class="abn bad"><span aria-hidden="true">▲ </span>vermillion</span> alert firing, sensors silent</p>` +
    `<p>Closed: outside the port's hours (its sensors are silent by design)</p>` +
    `<p>Lines: the last 12 h, one point per quarter hour of event time</p></div></section>`;
}

function banners(data, alerts) {
  const a = data.alerts || {}; let html = "";
  const since = s => { const d = new Date(s); return isNaN(d) ? "–" : d.toISOString().slice(11, 16) + " UTC"; };
  for (const al of alerts) {
    const where = al.port ? (meta[al.port] ? meta[al.port].name : al.port) : "Pipeline";
    html += `<div class="banner bad" role="alert" data-alert-port="${esc(al.port || "")}" data-alert-name="${esc(al.name)}">` +
      `▲ ${esc(where)} · ${esc(al.name)}: ${esc(al.summary)} · since ${since(al.since)}</div>`;
  }
  if (a.state === "unreachable") html += `<div class="banner note" data-alert-note="unreachable">▲ ${esc(a.error || "Alertmanager cannot be reached")}: alerts unknown</div>`;
  return html;
}

function render(data) {
  lastData = data;
  const slugs = wanted(), alerts = (data.alerts || {}).firing || [];
  const shown = alerts.filter(a => !a.port || slugs.includes(a.port));
  const n = slugs.length, cols = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 2 : n <= 6 ? 3 : 4, rows = Math.max(1, Math.ceil(n / cols));
  const main = document.getElementById("tiles");
  main.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  main.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
  let html = "";
  for (const slug of slugs) html += tile(slug, (data.ports || {})[slug] || {}, data, shown);
  if (cols * rows > n) html += overview(data, shown);
  main.innerHTML = html;
  document.getElementById("alerts").innerHTML = banners(data, shown);
  const now = new Date(data.now), ahead = (now - Date.now()) / 60000;
  document.getElementById("clock").textContent = `Monitor clock ${now.toISOString().slice(0, 16).replace("T", " ")} UTC` +
    (ahead > 2 ? ` · data time, wall clock +${ahead < 120 ? Math.round(ahead) + " min" : Math.round(ahead / 60) + " h"}` : "");
}

function stale(on) { on = on || errored; document.getElementById("stale").hidden = !on; document.body.classList.toggle("is-stale", on); }
setInterval(() => stale(Date.now() - last > STALE_AFTER_MS), 1000);
fetch("/display/meta.json").then(r => r.json()).then(m => {
  meta = m;
  document.body.classList.toggle("single", /^\/port\//.test(location.pathname));
  const es = new EventSource("/display/events");
  const alive = () => { errored = false; last = Date.now(); stale(false); };
  es.addEventListener("display", e => { alive(); render(JSON.parse(e.data)); });
  es.addEventListener("ping", alive);
  es.onerror = () => { errored = true; stale(true); };
}).catch(() => { errored = true; stale(true); });
