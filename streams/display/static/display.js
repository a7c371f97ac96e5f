"use strict";
const STALE_AFTER_MS = 5000;
let meta = {}, last = 0, errored = false, openNow = {}, lastData = null;
const fmt = (x, d) => (x === null || x === undefined) ? "–" : Number(x).toFixed(d || 0);
function cls(v, target) { if (v === null || v === undefined || !target) return ""; return v <= target ? "ok" : (v <= 1.5 * target ? "warn" : "bad"); }
function fig(id, label, value, unit, c) {
  return `<div class="fig"><span>${label}</span><span class="v ${c || ""}" data-fig="${id}" aria-label="${label}: ${value} ${unit}">${value} ${unit}</span></div>`;
}
function render(data) {
  lastData = data;
  const main = document.getElementById("tiles"); let html = "";
  for (const slug of Object.keys(meta)) {
    const r = (data.ports || {})[slug] || {}; const t = meta[slug].targets || {};
    const wm = r.watermark || null; const day = wm ? wm.slice(0, 10) : null;
    const today = day && r.days && r.days[day] ? r.days[day].crossings : 0;
    const insp = r.last_hour_avg_inspection_seconds ? r.last_hour_avg_inspection_seconds.truck : null;
    const wait = r.last_hour_avg_wait_seconds;
    const q = r.queue || {outbound: 0, inbound: 0};
    const fc = r.forecast || {};
    const mn = (d, k) => fc[d] && fc[d][k] !== null && fc[d][k] !== undefined ? fc[d][k] / 60 : null;
    const pair = (k) => `${fmt(mn("outbound", k))}/${fmt(mn("inbound", k))}`;
    const worst = [mn("outbound", "predicted_wait_seconds"), mn("inbound", "predicted_wait_seconds")]
      .filter(x => x !== null);
    const mins = wm ? Math.max(0, Math.round((Date.now() - Date.parse(wm)) / 60000)) : null;
    const [age, ageUnit] = mins === null ? [null, "min ago"] : mins < 120 ? [mins, "min ago"]
      : mins < 2880 ? [Math.round(mins / 60), "h ago"] : [Math.round(mins / 1440), "days ago"];
    html += `<section class="tile" data-port="${slug}" aria-label="${meta[slug].name}"><h2>${meta[slug].name}</h2>` +
      fig("throughput", "Throughput", fmt(r.throughput_per_hour), "veh/h") +
      fig("today", "Today", fmt(today), "veh") +
      fig("peak", "Peak " + (r.peak_day ? r.peak_day.date : "–"), fmt(r.peak_day ? r.peak_day.crossings : null), "veh") +
      fig("inspection", "Truck inspection", fmt(insp === null || insp === undefined ? null : insp / 60, 1), "min",
          cls(insp === null || insp === undefined ? null : insp / 60, t.truck_inspection_minutes)) +
      fig("queue_out", "Queue out", fmt(q.outbound), "veh", wm ? cls(q.outbound, t.queue_vehicles) : "") +
      fig("queue_in", "Queue in", fmt(q.inbound), "veh", wm ? cls(q.inbound, t.queue_vehicles) : "") +
      fig("forecast", "Forecast wait out/in", pair("predicted_wait_seconds"), "min",
          worst.length ? cls(Math.max(...worst), t.wait_minutes) : "") +
      fig("clear", "To clear out/in (+1 lane)", pair("clear_seconds") + " (" + pair("clear_seconds_one_more_lane") + ")",
          "min") +
      fig("wait", "Wait", fmt(wait === null || wait === undefined ? null : wait / 60, 1), "min",
          cls(wait === null || wait === undefined ? null : wait / 60, t.wait_minutes)) +
      (openNow[slug] === false  // closed now: its sensors are silent by design, not an alarm
        ? fig("watermark", "Closed · last " + (wm ? wm.slice(11, 16) : "–"), fmt(age), ageUnit, "")
        : fig("watermark", "Sensors " + (wm ? wm.slice(11, 19) : "–"), fmt(age), ageUnit, mins === null || mins > 15 ? "bad" : (mins > 5 ? "warn" : "ok"))) + `</section>`;
  }
  main.innerHTML = html;
}
function stale(on) { on = on || errored; document.getElementById("stale").hidden = !on; document.body.classList.toggle("is-stale", on); }
setInterval(() => stale(Date.now() - last > STALE_AFTER_MS), 1000);
fetch("/display/meta.json").then(r => r.json()).then(m => {
  meta = m;
  const es = new EventSource("/display/events");
  es.addEventListener("ports", e => { errored = false; last = Date.now(); stale(false); render(JSON.parse(e.data)); });
  es.addEventListener("hours", e => { openNow = JSON.parse(e.data); if (lastData) render(lastData); });
  es.addEventListener("ping", () => { errored = false; last = Date.now(); stale(false); });
  es.onerror = () => { errored = true; stale(true); };
}).catch(() => { errored = true; stale(true); });
