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

export async function api(path, { method = "GET", body, key, signal } = {}) {
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
  return data;
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
