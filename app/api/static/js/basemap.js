// The offline base map of the demo district: streets with names, squares, parks and the
// buildings the car parks serve, from /static/basemap/tiedong.geojson (made by
// app/demo/basemap.py from the demo data). Drawn under everything else; no tile server needed.
import { h } from "./api.js";
import { w } from "./words.js";

const URL = "/static/basemap/tiedong.geojson";
const LABEL_MIN_ZOOM = { street: 14, square: 14.5, park: 14, residential: 15.5, building: 16, district: 0 };

export class BaseMap {
  constructor(ctx) {
    this.ctx = ctx;
    this.places = [];
    const map = ctx.map;
    map.createPane("cp-base").style.zIndex = 250; // above tiles (200), under outlines and markers (400+)
    map.createPane("cp-base-labels").style.zIndex = 420;
    map.getPane("cp-base-labels").style.pointerEvents = "none";
    this.shapes = L.layerGroup().addTo(map);
    this.labels = L.layerGroup().addTo(map);
    this.ready = this.load();
    map.on("zoomend", () => this.showLabels());
  }

  async load() {
    let fc;
    try {
      const response = await fetch(URL);
      fc = await response.json();
    } catch {
      return; // decoration: every layer still draws without it
    }
    for (const feature of fc.features || []) this.add(feature);
    this.showLabels();
    document.body.dataset.basemap = String(this.places.length);
  }

  add(feature) {
    const { kind, name, label_at: at } = feature.properties;
    if (kind === "street") {
      L.geoJSON(feature, { pane: "cp-base", interactive: false, style: { className: "cp-street-casing", weight: 14 } }).addTo(this.shapes);
      L.geoJSON(feature, { pane: "cp-base", interactive: false, style: { className: "cp-street", weight: 9 } }).addTo(this.shapes);
    } else {
      L.geoJSON(feature, { pane: "cp-base", interactive: false, style: { className: `cp-area cp-area-${kind}`, weight: 1 } })
        .addTo(this.shapes);
    }
    const layer = L.geoJSON(feature);
    this.places.push({ kind, name, bounds: layer.getBounds(), at: (at || [])[0] });
    if (kind === "district") return;
    for (const [lon, lat] of at || []) {
      const el = h("span", { class: `cp-base-label cp-base-${kind}`, dataset: { kind, name } }, name);
      const vertical = kind === "street" && this.isVertical(feature);
      if (vertical) el.classList.add("cp-vertical");
      const icon = L.divIcon({ html: el, className: "cp-base-label-icon", iconSize: null });
      L.marker([lat, lon], { icon, pane: "cp-base-labels", interactive: false, keyboard: false, minZoom: LABEL_MIN_ZOOM[kind] })
        .addTo(this.labels);
    }
  }

  isVertical(feature) {
    const [[x0, y0], [x1, y1]] = feature.geometry.coordinates;
    return Math.abs(y1 - y0) > Math.abs(x1 - x0);
  }

  showLabels() {
    const zoom = this.ctx.map.getZoom();
    this.labels.eachLayer((marker) => {
      const el = marker.getElement();
      if (el) el.style.visibility = zoom >= (marker.options.minZoom || 0) ? "visible" : "hidden";
    });
  }

  // Places whose name contains the text (for the search box), best first.
  find(textValue) {
    const needle = textValue.trim().toLowerCase();
    if (!needle) return [];
    return this.places.filter((p) => p.kind !== "district" && p.name.toLowerCase().includes(needle))
      .sort((a, b) => Number(!a.name.startsWith(needle)) - Number(!b.name.startsWith(needle)) || a.name.length - b.name.length)
      .map((p) => ({ ...p, label: `${p.name} · ${w(`kind_${p.kind}`)}` }));
  }
}
