// The driver's point: set by any click on the map (on a facility too), shown with a marker,
// and said in the panel: where it is and whether it is the map centre or a click.
import { w } from "./words.js";

const $ = (id) => document.getElementById(id);
const DRAG_PX = 6;

function fmt(latlng) {
  return `${latlng.lat.toFixed(5)}, ${latlng.lng.toFixed(5)}`;
}

export function setupPoint(ctx) {
  let chosen = null;
  const map = ctx.map;
  const marker = L.circleMarker([0, 0], { radius: 7, className: "cp-point", interactive: false });
  const show = () => {
    const where = chosen ? w("point_clicked") : w("point_centre");
    $("driver-point").textContent = w("point_now", { where, at: fmt(chosen || map.getCenter()) });
    document.body.dataset.pointSource = chosen ? "clicked" : "centre";
  };
  ctx.point = () => chosen || map.getCenter();
  ctx.setPoint = (latlng) => {
    chosen = L.latLng(latlng);
    marker.setLatLng(chosen).addTo(map);
    document.body.dataset.point = `${chosen.lat.toFixed(6)},${chosen.lng.toFixed(6)}`;
    show();
  };
  // What the last search used, said under the button (called by the driver panel).
  ctx.onSearchPoint = (latlng) => {
    const where = chosen ? w("point_clicked") : w("point_centre");
    const used = $("driver-used");
    if (used) used.textContent = w("point_search", { where, at: fmt(latlng) });
  };
  // DOM clicks, not Leaflet's: a click on a facility marker sets the point too.
  const container = map.getContainer();
  let down = null;
  container.addEventListener("pointerdown", (e) => (down = [e.clientX, e.clientY]), true);
  container.addEventListener("click", (e) => {
    if (e.target.closest(".leaflet-control")) return;
    if (down && Math.hypot(e.clientX - down[0], e.clientY - down[1]) > DRAG_PX) return; // a drag
    ctx.setPoint(map.mouseEventToLatLng(e));
  }, true);
  map.on("moveend", () => chosen || show());
  show();
  return { refreshLabels: show };
}
