// Management view behind a manager key (issue 16): the pressure grid (停车难 map) as a shaded
// layer, a facility's occupancy heat table (weekday × hour), the pricing recommendations, a
// time range for all of them and CSV downloads (fetched with the key, saved as a file).
import { api, ApiError, h, query, showError, text } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const DAY = 86400000;
const pct = (x) => (x == null ? "—" : `${Math.round(x * 100)}%`);

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export class ManagementView {
  constructor(ctx) {
    this.ctx = ctx;
    this.key = sessionStorage.getItem("citypark.managerKey") || "";
    this.layer = L.layerGroup();
    const today = new Date();
    $("mgmt-until").value = isoDay(new Date(today.getTime() + DAY));
    $("mgmt-since").value = isoDay(new Date(today.getTime() - 27 * DAY));
    $("mgmt-key").value = this.key;
    $("mgmt-enter").addEventListener("click", () => this.enter($("mgmt-key").value.trim()));
    $("mgmt-leave").addEventListener("click", () => this.leave());
    $("mgmt-apply").addEventListener("click", () => this.load().catch((e) => this.fail(e)));
    $("mgmt-facility").addEventListener("change", () => this.loadHeat().catch((e) => this.fail(e)));
    for (const [id, path] of [["mgmt-csv-pricing", "pricing"], ["mgmt-csv-util", "utilization"]]) {
      $(id).addEventListener("click", () => this.download(path).catch((e) => this.fail(e)));
    }
  }

  get active() {
    return !$("mgmt-main").hidden;
  }

  period() {
    const since = new Date(`${$("mgmt-since").value}T00:00:00Z`), until = new Date(`${$("mgmt-until").value}T00:00:00Z`);
    return { since: since.toISOString(), until: until.toISOString() };
  }

  async enter(key) {
    showError($("mgmt-error"), key ? "" : t("need_key"));
    if (!key) return;
    this.key = key;
    try {
      await this.load();
    } catch (err) {
      showError($("mgmt-error"), err.status === 401 || err.status === 403 ? t("bad_key") : err.detail);
      return;
    }
    sessionStorage.setItem("citypark.managerKey", key);
    $("mgmt-login").hidden = true;
    $("mgmt-main").hidden = false;
    this.layer.addTo(this.ctx.map);
  }

  leave() {
    sessionStorage.removeItem("citypark.managerKey");
    this.key = "";
    $("mgmt-main").hidden = true;
    $("mgmt-login").hidden = false;
    this.layer.remove();
  }

  fail(err) {
    if (err.status === 401 || err.status === 403) this.leave();
    showError($("mgmt-error"), err.detail || String(err));
  }

  async load() {
    await Promise.all([this.loadPressure(), this.loadPricing()]);
    await this.loadHeat();
    document.body.dataset.mgmtLoaded = String(Date.now());
  }

  async loadPressure() {
    const fc = await api(`/v1/management/pressure?${query({ ...this.period(), cell_m: 250 })}`, { key: this.key });
    this.layer.clearLayers();
    const shown = (fc.features || []).filter((f) => f.properties.full_share != null);
    L.geoJSON({ type: "FeatureCollection", features: shown }, {
      style: (f) => ({ className: "cp-pressure", weight: 1, fillOpacity: 0.1 + 0.7 * f.properties.full_share }),
      onEachFeature: (f, layer) => layer.bindTooltip(text(
        `${t("mgmt_full")} ${pct(f.properties.full_share)} · ${t("mgmt_mean")} ${pct(f.properties.mean_occupancy)}`)),
    }).addTo(this.layer);
    $("mgmt-pressure-summary").textContent = t("mgmt_cells", { n: shown.length });
    document.body.dataset.pressureCells = String(shown.length);
  }

  async loadPricing() {
    const items = await api(`/v1/management/pricing?${query({ ...this.period(), limit: 5000 })}`, { key: this.key });
    const select = $("mgmt-facility"), chosen = select.value;
    const ids = [...new Map(items.map((i) => [i.facility_id, i.facility_name])).entries()];
    select.replaceChildren(...ids.map(([id, name]) => h("option", { value: id }, name || id)));
    if (chosen && ids.some(([id]) => id === chosen)) select.value = chosen;
    const rows = items.filter((i) => i.occupancy != null);
    $("mgmt-pricing").replaceChildren(
      h("tr", {}, ...["mgmt_facility", "mgmt_band", "mgmt_occupancy", "mgmt_fee", "mgmt_change", "mgmt_reason"]
        .map((k) => h("th", {}, t(k)))),
      ...rows.map((i) => h("tr", { class: i.change > 0 ? "up" : i.change < 0 ? "down" : "" },
        h("td", {}, i.facility_name || i.facility_id), h("td", {}, t(`band_${i.band}`)), h("td", {}, pct(i.occupancy)),
        h("td", {}, i.current_fee == null ? "—" : String(i.current_fee)),
        h("td", {}, i.change > 0 ? `+${i.change}` : String(i.change)), h("td", { class: "reason" }, i.reason))));
    document.body.dataset.pricingRows = String(rows.length);
  }

  async loadHeat() {
    const id = $("mgmt-facility").value;
    if (!id) return;
    const body = await api(`/v1/management/facilities/${encodeURIComponent(id)}/heat?${query(this.period())}`,
      { key: this.key });
    const cell = new Map(body.cells.map((c) => [`${c.weekday}:${c.hour}`, c.occupancy]));
    const hours = [...Array(24).keys()];
    $("mgmt-heat").replaceChildren(
      h("tr", {}, h("th", {}, ""), ...hours.map((hr) => h("th", {}, String(hr)))),
      ...[1, 2, 3, 4, 5, 6, 7].map((wd) => h("tr", {}, h("th", {}, t(`wd_${wd}`)), ...hours.map((hr) => {
        const v = cell.get(`${wd}:${hr}`);
        const style = v == null ? "" : `background: rgba(200, 40, 40, ${(0.1 + 0.9 * v).toFixed(2)})`;
        return h("td", { style, title: pct(v) }, v == null ? "" : String(Math.round(v * 100)));
      }))));
    document.body.dataset.heatCells = String(body.cells.length);
  }

  async download(path) {
    const response = await fetch(`/v1/management/${path}?${query({ ...this.period(), format: "csv" })}`,
      { headers: { Authorization: `Bearer ${this.key}` } });
    if (!response.ok) throw new ApiError(response.status, "csv", response.statusText);
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: `${path}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  refreshLabels() {
    if (this.active) this.load().catch((e) => this.fail(e));
  }
}
