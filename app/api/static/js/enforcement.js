// Enforcement view behind an enforcement key: active violations and how long they have lasted,
// the hotspot grid as a shaded layer with a time filter, the patrol list as a walking route.
import { api, apiAll, asList, h, query, showError, text } from "./api.js";
import { formatDistance, formatDuration, formatTime, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

export class EnforcementView {
  constructor(ctx) {
    this.ctx = ctx;
    this.key = sessionStorage.getItem("citypark.enforcementKey") || "";
    this.violations = [];
    ctx.map.createPane("cp-enf").style.zIndex = 640; // violations above the facility markers
    this.hotLayer = L.layerGroup();
    this.vioLayer = L.layerGroup();
    this.patrolLayer = L.layerGroup();
    $("enf-key").value = this.key;
    $("enf-enter").addEventListener("click", () => this.enter($("enf-key").value.trim()));
    $("enf-key").addEventListener("keydown", (e) => e.key === "Enter" && this.enter($("enf-key").value.trim()));
    $("enf-leave").addEventListener("click", () => this.leave());
    $("hot-window").addEventListener("change", () => this.loadHotspots().catch((e) => this.failed("hot-summary", e)));
    $("patrol-plan").addEventListener("click", () => this.loadPatrol().catch((e) => this.failed("patrol-summary", e)));
    setInterval(() => this.tick(), 1000);
  }

  get active() {
    return !$("enf-main").hidden;
  }

  async enter(key) {
    showError($("enf-error"), key ? "" : t("need_key"));
    if (!key) return;
    this.key = key;
    try {
      await this.loadViolations();
    } catch (err) {
      showError($("enf-error"), err.status === 401 || err.status === 403 ? t("bad_key") : err.detail);
      return;
    }
    sessionStorage.setItem("citypark.enforcementKey", key);
    $("enf-login").hidden = true;
    $("enf-main").hidden = false;
    for (const layer of [this.hotLayer, this.vioLayer, this.patrolLayer]) layer.addTo(this.ctx.map);
    await Promise.all([
      this.loadHotspots().catch((err) => this.failed("hot-summary", err)),
      this.loadPatrol().catch((err) => this.failed("patrol-summary", err)),
    ]);
  }

  // A part that did not load says so where its answer would be; the rest of the view stays.
  failed(id, err) {
    if (err.status === 401 || err.status === 403) return this.fail(err);
    $(id).textContent = `${t("load_failed")}: ${err.detail || err}`;
    $(id).classList.add("error");
  }

  leave() {
    sessionStorage.removeItem("citypark.enforcementKey");
    this.key = "";
    $("enf-key").value = "";
    $("enf-main").hidden = true;
    $("enf-login").hidden = false;
    for (const layer of [this.hotLayer, this.vioLayer, this.patrolLayer]) layer.remove();
  }

  fail(err) {
    if (err.status === 401 || err.status === 403) this.leave();
    showError($("enf-error"), err.detail || String(err));
  }

  async refresh() {
    if (this.active) await this.loadViolations().catch((e) => this.fail(e));
  }

  async loadViolations() {
    // every page (Link: rel="next"): a city has more active violations than one page holds
    this.violations = asList(await apiAll(`/v1/enforcement/violations?active=true`, { key: this.key }));
    this.renderViolations();
  }

  renderViolations() {
    $("vio-count").textContent = String(this.violations.length);
    $("vio-list").replaceChildren(...this.violations.map((v) => this.violationItem(v)));
    this.vioLayer.clearLayers();
    for (const v of this.violations) {
      L.circleMarker([v.lat, v.lon], { radius: 7, className: `cp-vio cp-vio-${v.kind}`, pane: "cp-enf" })
        .bindTooltip(text(`${t(`kind_${v.kind}`)} · ${v.space_id}`)).addTo(this.vioLayer);
    }
    this.tick();
  }

  violationItem(v) {
    const limit = v.limit_minutes ? ` · ${t("limit", { m: v.limit_minutes })}` : "";
    return h("li", { class: `vio vio-${v.kind}`, dataset: { id: v.id, started: v.started_at }, onclick: () => this.ctx.map.setView([v.lat, v.lon], 18) },
      h("strong", {}, t(`kind_${v.kind}`)), ` ${v.space_id}`,
      h("div", { class: "sub" }, `${v.facility_name || v.facility_id} · ${formatTime(v.started_at, true)}${limit} · `,
        h("span", { class: "lasted" })));
  }

  tick() {
    for (const li of document.querySelectorAll("#vio-list .vio")) {
      const seconds = (Date.now() - new Date(li.dataset.started)) / 1000;
      li.querySelector(".lasted").textContent = t("lasted", { d: formatDuration(seconds) });
    }
  }

  async loadHotspots() {
    const until = new Date(), since = new Date(until.getTime() - Number($("hot-window").value) * 1000);
    const fc = await apiAll(`/v1/enforcement/hotspots?${query({ since: since.toISOString(), until: until.toISOString() })}`,
      { key: this.key });
    const features = fc?.features || [];
    const max = Math.max(1, ...features.map((f) => Number(f.properties?.count) || 0));
    this.hotLayer.clearLayers();
    L.geoJSON(fc, {
      style: (f) => ({ className: "cp-hot", weight: 1, fillOpacity: 0.15 + 0.6 * ((f.properties?.count || 0) / max) }),
      onEachFeature: (f, layer) => layer.bindTooltip(text(
        `${f.properties?.count ?? 0} · ${formatDuration((f.properties?.minutes_in_violation || 0) * 60)}`)),
    }).addTo(this.hotLayer);
    const count = features.reduce((n, f) => n + (Number(f.properties?.count) || 0), 0);
    $("hot-summary").classList.remove("error");
    $("hot-summary").textContent = features.length ? t("hot_summary", { cells: features.length, count }) : t("hot_none");
    document.body.dataset.hotspotCells = String(features.length);
  }

  async loadPatrol() {
    const p = this.ctx.point();
    const body = await api(`/v1/enforcement/patrol?${query({ lat: p.lat.toFixed(6), lon: p.lng.toFixed(6), limit: 20 })}`,
      { key: this.key });
    const stops = asList(body);
    $("patrol-list").replaceChildren(...stops.map((s) => h("li", { class: "stop" },
      h("strong", {}, t(`kind_${s.kind}`) || ""), ` ${s.space_id || s.id || ""}`,
      h("span", { class: "sub" }, ` · ${formatDistance(s.leg_m ?? s.distance_m)}`))));
    const dist = body?.total_distance_m;
    $("patrol-summary").classList.remove("error");
    $("patrol-summary").textContent = stops.length
      ? t("patrol_summary", { n: stops.length, dist: formatDistance(dist) }) : t("patrol_none");
    this.patrolLayer.clearLayers();
    if (stops.length) L.polyline([p, ...stops.map((s) => [s.lat, s.lon])], { className: "cp-patrol", pane: "cp-enf" }).addTo(this.patrolLayer);
  }

  refreshLabels() {
    if (!this.active) return;
    this.renderViolations();
    this.loadHotspots().catch((err) => this.failed("hot-summary", err));
    this.loadPatrol().catch((err) => this.failed("patrol-summary", err));
  }
}
