// A clicked facility: its numbers, kind, hours, fees and a small occupancy chart (plain SVG).
import { api, asList, h, query } from "./api.js";
import { statusOf } from "./facilities.js";
import { formatTime, t } from "./i18n.js";
import { renderForecast } from "./forecast.js";

const DAY_MS = 86400000;
const $ = (id) => document.getElementById(id);

function pick(obj, pattern) {
  const flat = { ...(obj.attributes || {}), ...(obj.attrs || {}), ...obj };
  const key = Object.keys(flat).find((k) => pattern.test(k) && typeof flat[k] !== "object");
  return key === undefined ? undefined : flat[key];
}

// One point of the history series as {time, ratio} (occupied share of the total), or null.
export function historyPoint(p, total) {
  const time = p.t ?? p.time ?? p.at ?? p.ts ?? p.bucket ?? p.start ?? p.observed_at;
  if (!time) return null;
  const cap = p.total ?? total;
  let ratio = p.occupancy ?? p.occupancy_rate ?? p.ratio;
  if (ratio == null && p.occupied != null && cap) ratio = p.occupied / cap;
  if (ratio == null && p.free != null && cap) ratio = 1 - p.free / cap;
  if (ratio == null || Number.isNaN(Number(ratio))) return null;
  ratio = Number(ratio) > 1 ? Number(ratio) / 100 : Number(ratio);
  return { time: new Date(time).getTime(), ratio: Math.min(1, Math.max(0, ratio)) };
}

export function chartSvg(points, fromMs, toMs) {
  const W = 300, H = 90, P = 4;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 16}`);
  svg.setAttribute("class", "cp-chart");
  const x = (ms) => P + ((ms - fromMs) / Math.max(1, toMs - fromMs)) * (W - 2 * P);
  const y = (r) => P + (1 - r) * (H - 2 * P);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text) el.textContent = text;
    svg.append(el);
    return el;
  };
  for (const r of [0, 0.5, 1]) add("line", { x1: P, x2: W - P, y1: y(r), y2: y(r), class: "grid" });
  add("text", { x: W - P, y: y(1) + 9, "text-anchor": "end", class: "axis" }, "100%");
  const line = points.map((p) => `${x(p.time).toFixed(1)},${y(p.ratio).toFixed(1)}`).join(" ");
  add("polygon", { points: `${x(points[0].time)},${y(0)} ${line} ${x(points.at(-1).time)},${y(0)}`, class: "area" });
  add("polyline", { points: line, class: "line" });
  add("text", { x: P, y: H + 12, class: "axis" }, formatTime(new Date(fromMs).toISOString(), true));
  add("text", { x: W - P, y: H + 12, "text-anchor": "end", class: "axis" }, formatTime(new Date(toMs).toISOString(), true));
  return svg;
}

// "2 / 3" (free of total) for accessible or EV spaces; just the total when free is unknown.
function freeOf(f, what) {
  const total = f[`${what}_total`] ?? pick(f, new RegExp(`^${what}`));
  if (total === undefined || total === null || Number(total) === 0) return undefined;
  const free = f[`${what}_free`];
  return free === undefined || free === null ? String(total) : `${free} / ${total}`;
}

function ruleText(r) {
  const what = r.kind === "no_parking" ? t("rule_no_parking") : t("limit", { m: r.max_stay_minutes });
  return `${what} · ${r.days} ${r.from ?? r.start ?? ""}–${r.to ?? r.end ?? ""}`;
}

export class FacilityDetail {
  constructor(ctx) {
    this.ctx = ctx;
    this.id = null;
    this.info = null;
    $("detail-close").addEventListener("click", () => this.close());
  }

  async open(id) {
    this.id = id;
    this.info = null;
    this.ctx.facilities.select(id);
    $("detail").hidden = false;
    this.render();
    const [info, history] = await Promise.allSettled([
      api(`/v1/facilities/${encodeURIComponent(id)}`), this.loadHistory(id)]);
    if (this.id !== id) return;
    if (info.status === "fulfilled") this.info = info.value;
    this.render();
    this.renderChart(history.status === "fulfilled" ? history.value : []);
    renderForecast(id); // issue 17
  }

  async loadHistory(id) {
    const until = new Date(), since = new Date(until.getTime() - DAY_MS);
    const q = query({ since: since.toISOString(), until: until.toISOString() });
    const body = await api(`/v1/facilities/${encodeURIComponent(id)}/history?${q}`);
    this.range = [since.getTime(), until.getTime()];
    return asList(body);
  }

  close() {
    this.id = null;
    this.ctx.facilities.select(null);
    $("detail").hidden = true;
  }

  // The live numbers come from the facility layer's latest poll; facts from the detail call.
  render() {
    if (!this.id) return;
    const live = { ...(this.info || {}), ...(this.ctx.facilities.get(this.id) || {}) };
    const status = statusOf(live);
    $("detail-name").textContent = live.name || this.id;
    $("detail").dataset.id = this.id;
    $("detail").dataset.loaded = String(Boolean(this.info));
    $("detail-numbers").replaceChildren(
      h("span", { class: `big cp-s-${status}`, id: "detail-free" }, live.free ?? "?"),
      h("span", { class: "of" }, ` / ${live.total ?? "?"}`),
      h("span", { class: `badge cp-s-${status}` }, t(`st_${status}`)));
    $("detail-facts").replaceChildren(...this.facts(live).flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)]));
  }

  facts(f) {
    const rows = [["kind", t(`kind_${f.kind}`)], ["operator", f.operator_id]];
    rows.push(["hours", pick(f, /^opening_hours$/)], ["public_hours", pick(f, /^public_hours$/)]);
    rows.push(["fee", pick(f, /^fees?$/)], ["accessible_spaces", freeOf(f, "accessible")]);
    rows.push(["ev_spaces", freeOf(f, "ev")], ["observed", f.observed_at && formatTime(f.observed_at, true)]);
    for (const r of f.rules || []) rows.push(["rule", ruleText(r)]);
    return rows.filter(([, v]) => v !== undefined && v !== null && v !== "");
  }

  renderChart(series = this.series || []) {
    this.series = series;
    const total = (this.info || this.ctx.facilities.get(this.id) || {}).total;
    const points = series.map((p) => historyPoint(p, total)).filter(Boolean).sort((a, b) => a.time - b.time);
    const box = $("detail-chart");
    if (points.length < 2) {
      box.replaceChildren(h("p", { class: "hint" }, t("no_history")));
      return;
    }
    const [from, to] = this.range;
    box.replaceChildren(chartSvg(points, Math.min(from, points[0].time), Math.max(to, points.at(-1).time)));
  }
}
