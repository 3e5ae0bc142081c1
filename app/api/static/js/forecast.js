// A facility's forecast in its detail panel: expected free spaces over the next two hours,
// the p10–p90 interval shaded, and the chance of a free space (issue 17). Plain SVG.
import { api } from "./api.js";
import { formatTime } from "./i18n.js";

const HORIZONS = "15,30,45,60,75,90,105,120";
const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

export function forecastSvg(body) {
  const W = 300, H = 90, P = 4;
  const pts = body.points.filter((p) => p.free !== null);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H + 16}`, class: "cp-chart cp-forecast" });
  if (!pts.length) return svg;
  const top = Math.max(1, body.total);
  const x = (i) => P + (i / Math.max(1, pts.length - 1)) * (W - 2 * P);
  const y = (v) => P + (1 - Math.min(top, Math.max(0, v)) / top) * (H - 2 * P);
  const upper = pts.map((p, i) => `${x(i).toFixed(1)},${y(p.free_p90).toFixed(1)}`);
  const lower = pts.map((p, i) => `${x(i).toFixed(1)},${y(p.free_p10).toFixed(1)}`).reverse();
  svg.append(el("polygon", { points: [...upper, ...lower].join(" "), class: "band", fill: "#3b82f6", "fill-opacity": "0.25" }));
  svg.append(el("polyline", { points: pts.map((p, i) => `${x(i).toFixed(1)},${y(p.free).toFixed(1)}`).join(" "),
    class: "line", fill: "none", stroke: "#1d4ed8", "stroke-width": "2" }));
  svg.append(el("text", { x: P, y: H + 12, class: "axis" }, formatTime(pts[0].at, true)));
  svg.append(el("text", { x: W - P, y: H + 12, "text-anchor": "end", class: "axis" }, formatTime(pts.at(-1).at, true)));
  svg.append(el("text", { x: W - P, y: P + 9, "text-anchor": "end", class: "axis" }, String(body.total)));
  return svg;
}

export async function renderForecast(id) {
  const box = document.getElementById("detail-forecast");
  if (!box) return;
  box.replaceChildren();
  let body;
  try {
    body = await api(`/v1/facilities/${encodeURIComponent(id)}/forecast?horizons=${HORIZONS}`);
  } catch {
    return;
  }
  const last = body.points.at(-1);
  const caption = document.createElement("p");
  caption.className = "hint";
  const chance = last && last.p_any_free !== null ? ` · P(free) ${Math.round(last.p_any_free * 100)}%` : "";
  caption.textContent = `forecast 预测 (${body.model})${chance}`;
  box.dataset.model = body.model;
  box.replaceChildren(caption, forecastSvg(body));
}
