// The API as the page uses it: JSON over fetch, errors as {"error", "detail"}, keys as Bearer.

export class ApiError extends Error {
  constructor(status, kind, detail) {
    super(detail || kind);
    this.status = status;
    this.kind = kind;
    this.detail = detail;
  }
}

function headers(key, json) {
  const h = { Accept: "application/json" };
  if (key) h.Authorization = `Bearer ${key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

export async function api(path, options = {}) {
  return (await request(path, options)).data;
}

async function request(path, { method = "GET", body, key, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method, signal, headers: headers(key, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", String(err.message || err));
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || "http_error", data?.detail || response.statusText);
  }
  return { data, response };
}

// The target of a response's `Link: <…>; rel="next"` (RFC 8288), or null on the last page.
export function nextLink(response) {
  const header = response.headers.get("Link") || "";
  for (const m of header.matchAll(/<([^>]*)>\s*;\s*rel="?([^";,]*)"?/g)) {
    if (m[2].split(/\s+/).includes("next")) return m[1];
  }
  return null;
}

const MAX_PAGES = 200;

// Every page of a capped list (the contract's "Lists" rule): follows `Link: rel="next"` and
// joins the pages — a bare list, a wrapped one (`stops`, …) or a GeoJSON FeatureCollection
// (its features). The first page's object is returned with the whole list in it.
export async function apiAll(path, { key, signal } = {}) {
  let first = null;
  const all = [];
  let url = path;
  for (let page = 0; url && page < MAX_PAGES; page++) {
    const { data, response } = await request(url, { key, signal });
    if (first === null) first = data;
    all.push(...asList(data));
    url = nextLink(response);
  }
  if (Array.isArray(first)) return all;
  if (first && typeof first === "object") {
    const k = Array.isArray(first.features) ? "features" : LIST_KEYS.find((name) => Array.isArray(first[name]));
    if (k) return { ...first, [k]: all };
  }
  return first;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

const LIST_KEYS = ["items", "results", "features", "facilities", "spaces", "violations", "stops", "route",
  "points", "series", "history", "data"];

// Lists may come bare or wrapped in an object; take the list either way.
export function asList(body) {
  if (Array.isArray(body)) return body;
  if (!body || typeof body !== "object") return [];
  for (const k of LIST_KEYS) if (Array.isArray(body[k])) return body[k];
  return Object.values(body).find(Array.isArray) || [];
}

// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
export async function streamEvents(path, { key, signal, onEvent }) {
  const response = await fetch(path, { headers: { ...headers(key), Accept: "text/event-stream" }, signal });
  if (!response.ok || !response.body) throw new ApiError(response.status, "stream", "no event stream");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, cut), onEvent);
      buffer = buffer.slice(cut + 2);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  let parsed = data.join("\n");
  try {
    parsed = JSON.parse(parsed);
  } catch {
    // a plain-text event: pass it on as it is
  }
  onEvent(name, parsed);
}

// A tiny DOM builder: text always goes in as text, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

// Tooltip and popup content as text: Leaflet would take a string as HTML.
export function text(value) {
  return h("span", {}, value);
}

export function showError(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}
