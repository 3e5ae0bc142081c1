// Facilities coloured by availability, free spaces when zoomed in; refreshed by short polling.
import { apiAll, asList, h, query, text } from "./api.js";
import { t } from "./i18n.js";

export const STATUSES = ["spacesAvailable", "almostFull", "full", "closed", "unknown"];
const KIND_GLYPH = { lot: "P", garage: "G", curb: "路" };
const SPACES_MIN_ZOOM = 17;
const MAX_FACILITIES = 500; // the API's cap per page: more are fetched through Link: rel="next"
const SPACES_PAGE = 1000; // free spaces per page of the bbox query

export function statusOf(f) {
  if (STATUSES.includes(f.status)) return f.status;
  if (f.free == null || !f.total) return "unknown";
  if (f.free <= 0) return "full";
  return f.free / f.total < 0.1 ? "almostFull" : "spacesAvailable";
}

function viewRadius(map, cap) {
  const b = map.getBounds();
  return Math.min(cap, Math.ceil(map.distance(b.getCenter(), b.getNorthEast())));
}

export class FacilityLayer {
  constructor(ctx, { onSelect }) {
    this.ctx = ctx;
    this.onSelect = onSelect;
    this.byId = new Map();
    this.markers = L.layerGroup().addTo(ctx.map);
    this.spaces = L.layerGroup().addTo(ctx.map);
    this.outlines = L.layerGroup().addTo(ctx.map);
    this.outlinesDrawn = new Set();
    this.seq = 0;
    this.spacesSeq = 0;
  }

  // The first view asks for every facility (to fit the map to them); later ones for the view.
  facilitiesUrl(all = false) {
    if (all) return `/v1/facilities?${query({ limit: MAX_FACILITIES })}`;
    const c = this.ctx.map.getCenter();
    const radius = viewRadius(this.ctx.map, this.ctx.cfg.max_radius_m || 5000);
    return `/v1/facilities?${query({ lat: c.lat.toFixed(6), lon: c.lng.toFixed(6), radius_m: radius, limit: MAX_FACILITIES })}`;
  }

  async refresh({ all = false } = {}) {
    const seq = ++this.seq;
    const url = this.facilitiesUrl(all);
    const list = asList(await apiAll(url));
    if (seq !== this.seq) return list; // a newer view's answer is on its way
    document.body.dataset.facilitiesQuery = url;
    this.apply(list);
    await this.refreshOutlines(url);
    await this.refreshSpaces();
    return list;
  }

  apply(list) {
    const seen = new Set();
    for (const f of list) {
      seen.add(f.id);
      const known = this.byId.get(f.id);
      if (known) this.update(known, f);
      else this.add(f);
    }
    for (const [id, entry] of this.byId) {
      if (seen.has(id)) continue;
      this.markers.removeLayer(entry.marker);
      this.byId.delete(id);
    }
    document.body.dataset.facilityCount = String(this.byId.size);
  }

  add(f) {
    const el = h("div", { class: "cp-fac", dataset: { id: f.id } },
      h("span", { class: "cp-glyph" }), h("b", { class: "cp-free" }));
    const icon = L.divIcon({ html: el, className: "cp-fac-icon", iconSize: [44, 24], iconAnchor: [22, 12] });
    const marker = L.marker([f.lat, f.lon], { icon, title: f.name, riseOnHover: true, keyboard: true });
    marker.on("click", () => this.onSelect(f.id));
    marker.addTo(this.markers);
    const entry = { marker, el, data: f };
    this.byId.set(f.id, entry);
    this.update(entry, f);
  }

  update(entry, f) {
    entry.data = f;
    const status = statusOf(f);
    entry.el.className = `cp-fac cp-kind-${f.kind} cp-s-${status}`;
    entry.el.classList.toggle("cp-selected", this.selected === f.id);
    entry.el.dataset.status = status;
    entry.el.dataset.free = f.free ?? "";
    entry.el.querySelector(".cp-glyph").textContent = KIND_GLYPH[f.kind] || "P";
    entry.el.querySelector(".cp-free").textContent = f.free ?? "?";
    this.ctx.labels?.symbol(entry); // 禁停, closed and unknown marks (labels.js)
    entry.el.title = `${f.name} · ${t("free_of", { free: f.free ?? "?", total: f.total ?? "?" })} · ${t(`st_${status}`)}`;
    entry.marker.setLatLng([f.lat, f.lon]);
  }

  select(id) {
    this.selected = id;
    for (const [key, entry] of this.byId) {
      entry.el.classList.toggle("cp-selected", key === id);
      entry.marker.setZIndexOffset(key === id ? 1000 : 0);
    }
  }

  get(id) {
    return this.byId.get(id)?.data;
  }

  // Shapes (polygons, curb lines) once per facility, when the API gives them as GeoJSON.
  async refreshOutlines(url) {
    if ([...this.byId.keys()].every((id) => this.outlinesDrawn.has(id))) return;
    let fc;
    try {
      fc = await apiAll(`${url}&format=geojson`);
    } catch {
      return; // outlines are decoration; markers already carry the numbers
    }
    for (const feature of fc?.features || []) {
      const id = feature.id ?? feature.properties?.id;
      if (!id || this.outlinesDrawn.has(id)) continue;
      this.outlinesDrawn.add(id);
      if (!feature.geometry || feature.geometry.type === "Point") continue;
      L.geoJSON(feature, { interactive: false, style: { className: "cp-outline", weight: 2 } }).addTo(this.outlines);
    }
  }

  async refreshSpaces() {
    const map = this.ctx.map;
    if (map.getZoom() < SPACES_MIN_ZOOM) {
      this.spaces.clearLayers();
      document.body.dataset.freeSpaces = "0";
      return;
    }
    // every free space in view: the bbox query, all its pages (not the nearest 100 of the centre)
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(",");
    const seq = ++this.spacesSeq;
    const list = asList(await apiAll(`/v1/spaces/free?${query({ bbox, limit: SPACES_PAGE })}`));
    if (seq !== this.spacesSeq) return; // the view moved on meanwhile
    this.spaces.clearLayers();
    for (const s of list) {
      L.circleMarker([s.lat, s.lon], { radius: 5, className: "cp-space", interactive: true })
        .bindTooltip(text(`${t("space")} ${s.space_id}`)).addTo(this.spaces);
    }
    document.body.dataset.freeSpaces = String(list.length);
  }
}

export function addLegend(map) {
  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = () => {
    const box = h("div", { class: "legend" }, h("strong", { "data-i18n": "legend_title" }, t("legend_title")));
    for (const s of STATUSES) {
      box.append(h("div", {}, h("i", { class: `swatch cp-s-${s}` }), h("span", { "data-i18n": `st_${s}` }, t(`st_${s}`))));
    }
    return box;
  };
  legend.addTo(map);
}
