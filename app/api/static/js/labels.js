// Facility names on the map at close zoom (≥ 16.5), and the 禁停 / closed / unknown symbols,
// kept in step with the facility layer after each refresh.
import { w } from "./words.js";

export const LABEL_ZOOM = 16.5;

export class FacilityLabels {
  constructor(ctx) {
    this.ctx = ctx;
    ctx.map.on("zoomend", () => this.update());
  }

  update() {
    const show = this.ctx.map.getZoom() >= LABEL_ZOOM;
    let shown = 0;
    for (const entry of this.ctx.facilities.byId.values()) {
      this.symbol(entry);
      const has = Boolean(entry.marker.getTooltip());
      if (show && !has) {
        entry.marker.bindTooltip(entry.data.name, { permanent: true, direction: "bottom", offset: [0, 10], className: "cp-fac-label" });
      } else if (!show && has) {
        entry.marker.unbindTooltip();
      } else if (show && entry.marker.getTooltip().getContent() !== entry.data.name) {
        entry.marker.setTooltipContent(entry.data.name);
      }
      if (show) shown += 1;
    }
    document.body.dataset.facilityLabels = String(shown);
  }

  // 禁停 instead of "路 0"; "closed" and "unknown" each with its own mark, never a bare number.
  symbol(entry) {
    const f = entry.data, el = entry.el;
    const status = el.dataset.status;
    el.classList.toggle("cp-no-parking", Boolean(f.no_parking));
    if (f.no_parking) {
      el.querySelector(".cp-glyph").textContent = w("no_parking_glyph");
      el.querySelector(".cp-free").textContent = "";
    } else if (status === "closed") {
      el.querySelector(".cp-free").textContent = w("closed_short");
    } else if (status === "unknown") {
      el.querySelector(".cp-free").textContent = w("unknown_short");
    }
  }
}
