// The search box (a map control): facilities by name from GET /v1/facilities?q=, places of the
// base map (squares, parks, streets) locally. Picking a result flies there; a facility opens.
import { api, asList, h, query } from "./api.js";
import { w } from "./words.js";

const DEBOUNCE_MS = 200;
const MAX_RESULTS = 8;

export class SearchBox {
  constructor(ctx) {
    this.ctx = ctx;
    this.results = [];
    this.seq = 0;
    const control = L.control({ position: "topleft" });
    control.onAdd = () => this.build();
    control.addTo(ctx.map);
  }

  build() {
    this.input = h("input", { id: "search", type: "search", class: "cp-search-input", autocomplete: "off",
      placeholder: w("search_placeholder"), "aria-label": w("search_label") });
    this.list = h("ul", { id: "search-results", class: "cp-search-results", role: "listbox", hidden: true });
    const box = h("div", { class: "cp-search leaflet-bar" }, this.input, this.list);
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    let timer;
    this.input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.run(), DEBOUNCE_MS);
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.run().then(() => this.results[0] && this.pick(this.results[0]));
      } else if (e.key === "Escape") {
        this.list.hidden = true;
      }
    });
    return box;
  }

  refreshLabels() {
    if (this.input) this.input.placeholder = w("search_placeholder");
  }

  async run() {
    const seq = ++this.seq;
    const text = this.input.value.trim();
    if (!text) {
      this.show([]);
      return;
    }
    let facilities = [];
    try {
      facilities = asList(await api(`/v1/facilities?${query({ q: text, limit: MAX_RESULTS })}`));
    } catch {
      facilities = []; // the places of the base map still answer
    }
    if (seq !== this.seq) return;
    const places = this.ctx.basemap ? this.ctx.basemap.find(text) : [];
    const results = [
      ...places.map((p) => ({ label: p.label, place: p })),
      ...facilities.map((f) => ({ label: `${f.name} · ${w("search_facility")}`, facility: f })),
    ].slice(0, MAX_RESULTS);
    this.show(results);
  }

  show(results) {
    this.results = results;
    this.list.replaceChildren(...(results.length ? results.map((r, i) => h("li", {
      role: "option", class: "cp-search-hit", dataset: { index: i, kind: r.facility ? "facility" : r.place.kind },
      onclick: () => this.pick(r) }, r.label)) : [h("li", { class: "cp-search-none" }, w("search_none"))]));
    this.list.hidden = !this.input.value.trim();
    document.body.dataset.searchResults = String(results.length);
  }

  pick(result) {
    const map = this.ctx.map;
    this.list.hidden = true;
    if (result.facility) {
      const f = result.facility;
      map.setView([f.lat, f.lon], Math.max(map.getZoom(), 17.5));
      this.ctx.detail.open(f.id);
    } else if (result.place.kind === "street") {
      map.fitBounds(result.place.bounds, { padding: [30, 30], maxZoom: 17 });
    } else {
      map.fitBounds(result.place.bounds, { padding: [30, 30], maxZoom: 17.5 });
    }
    document.body.dataset.searchPicked = result.facility ? result.facility.id : result.place.name;
  }
}
