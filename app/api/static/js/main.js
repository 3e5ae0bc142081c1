// Boot: the map, base tiles (optional), tabs, language, the chosen point and the live poll.
import { FacilityDetail } from "./detail.js";
import { DriverPanel } from "./driver.js";
import { EnforcementView } from "./enforcement.js";
import { addLegend, FacilityLayer } from "./facilities.js";
import { ManagementView } from "./management.js";
import { applyI18n, formatTime, lang, onLangChange, setLang, t } from "./i18n.js";
import { BaseMap } from "./basemap.js"; // issue 18: offline base map, names, search, the point
import { FacilityLabels } from "./labels.js";
import { setupPoint } from "./point.js";
import { SearchBox } from "./search.js";

const cfg = window.CITYPARK_CONFIG || {};
const params = new URLSearchParams(location.search);
const DEFAULT_VIEW = { lat: 41.1155, lon: 122.9985, zoom: 15 }; // 铁东 demo district
const POLL_MS = Math.max(500, Number(params.get("poll")) || 5000);
const $ = (id) => document.getElementById(id);

function createMap() {
  const lat = Number(params.get("lat")) || DEFAULT_VIEW.lat;
  const lon = Number(params.get("lon")) || DEFAULT_VIEW.lon;
  const map = L.map("map", { zoomControl: true, zoomSnap: 0.25 }).setView([lat, lon], Number(params.get("z")) || DEFAULT_VIEW.zoom);
  if (cfg.tile_url) {
    // With the tile server unreachable the layers still draw, on the plain background.
    L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.tile_attribution || "" }).addTo(map);
  } else {
    map.getContainer().classList.add("no-tiles");
  }
  return map;
}

function setupTabs(enforcement, management) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) {
        other.classList.toggle("active", other === tab);
        other.setAttribute("aria-selected", String(other === tab));
      }
      $("tab-driver").hidden = tab.dataset.tab !== "driver";
      $("tab-enforcement").hidden = tab.dataset.tab !== "enforcement";
      $("tab-management").hidden = tab.dataset.tab !== "management";
      document.body.classList.toggle("enf-mode", tab.dataset.tab === "enforcement");
      if (tab.dataset.tab === "enforcement" && enforcement.key && !enforcement.active) enforcement.enter(enforcement.key);
      if (tab.dataset.tab === "management" && management.key && !management.active) management.enter(management.key);
    });
  }
}

let lastOk = true;
let lastUpdate = null;

// ok: true, false (offline) or "rate_limited"; called without it, re-labels the last state.
function setStatus(ok = lastOk) {
  if (ok === true && arguments.length) lastUpdate = new Date().toISOString();
  lastOk = ok;
  const failure = ok === "rate_limited" ? t("rate_limited") : t("offline");
  $("status").textContent = ok === true ? t("updated", { time: formatTime(lastUpdate) }) : failure;
  $("status").classList.toggle("bad", ok !== true);
}

async function refresh(ctx, options) {
  try {
    await ctx.facilities.refresh(options);
    ctx.labels?.update();
    ctx.detail.render();
    await ctx.enforcement.refresh();
    setStatus(true);
  } catch (err) {
    setStatus(err.status === 429 ? "rate_limited" : false);
    console.warn("refresh failed", err);
  }
}

// Without an explicit view in the URL, the first answer decides it: the whole district.
async function firstView(ctx) {
  const fit = !params.has("lat") && !params.has("z");
  await refresh(ctx, { all: fit });
  if (!fit || !ctx.facilities.byId.size) return;
  const bounds = L.latLngBounds([...ctx.facilities.byId.values()].map((e) => e.marker.getLatLng()));
  ctx.map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
}

function livePoll(ctx) {
  const loop = async () => {
    if (!document.hidden) await refresh(ctx);
    ctx.timer = setTimeout(loop, POLL_MS);
  };
  firstView(ctx).finally(() => (ctx.timer = setTimeout(loop, POLL_MS)));
  let debounce;
  ctx.map.on("moveend", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => refresh(ctx), 250);
  });
}

function boot() {
  applyI18n();
  $("lang-toggle").textContent = lang() === "zh" ? "EN" : "中文";
  const ctx = { cfg, map: createMap() };
  ctx.basemap = new BaseMap(ctx);
  ctx.refresh = () => refresh(ctx);
  window.citypark = ctx; // for debugging in the browser console
  ctx.facilities = new FacilityLayer(ctx, { onSelect: (id) => ctx.detail.open(id) });
  ctx.detail = new FacilityDetail(ctx);
  ctx.labels = new FacilityLabels(ctx);
  ctx.search = new SearchBox(ctx);
  ctx.pointPanel = setupPoint(ctx);
  ctx.driver = new DriverPanel(ctx);
  ctx.enforcement = new EnforcementView(ctx);
  ctx.management = new ManagementView(ctx);
  addLegend(ctx.map);
  setupTabs(ctx.enforcement, ctx.management);
  $("lang-toggle").addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
  onLangChange((value) => {
    $("lang-toggle").textContent = value === "zh" ? "EN" : "中文";
    setStatus();
    ctx.detail.render();
    if (ctx.detail.id) ctx.detail.renderChart();
    ctx.driver.refreshLabels();
    ctx.enforcement.refreshLabels();
    ctx.management.refreshLabels();
    ctx.search.refreshLabels();
    ctx.pointPanel.refreshLabels();
    ctx.labels.update();
  });
  livePoll(ctx);
}

boot();
