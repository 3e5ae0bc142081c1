// "Find me a space": POST /v1/assignments with the driver's key, then follow the hold —
// countdown from expires_at, reassignments from the SSE stream (polling if it fails).
import { api, h, showError, streamEvents, text } from "./api.js";
import { formatDistance, formatTime, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["held", "reassigned"]);
const POLL_MS = 3000;

export class DriverPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.current = null;
    this.abort = null;
    ctx.map.createPane("cp-held").style.zIndex = 650; // above the facility markers
    this.layer = L.layerGroup().addTo(ctx.map);
    $("driver-key").value = sessionStorage.getItem("citypark.driverKey") || "";
    $("find-space").addEventListener("click", () => this.find());
    $("asg-cancel").addEventListener("click", () => this.cancel());
    setInterval(() => this.tick(), 1000);
  }

  key() {
    const key = $("driver-key").value.trim();
    sessionStorage.setItem("citypark.driverKey", key);
    return key;
  }

  async find() {
    const key = this.key();
    showError($("driver-error"), key ? "" : t("need_key"));
    if (!key) return;
    const p = this.ctx.point();
    this.ctx.onSearchPoint?.(p); // say which point the search used
    const body = { lat: p.lat, lon: p.lng };
    if ($("want-accessible").checked) body.accessible = true;
    if ($("want-ev").checked) body.ev = true;
    $("find-space").disabled = true;
    try {
      this.follow(await api("/v1/assignments", { method: "POST", body, key }), key);
      this.ctx.refresh(); // the held space no longer counts as free
    } catch (err) {
      showError($("driver-error"), this.message(err));
    } finally {
      $("find-space").disabled = false;
    }
  }

  message(err) {
    if (err.kind === "no_free_space") return t("no_free_space");
    if (err.status === 401 || err.status === 403) return t("bad_key");
    return err.detail || String(err);
  }

  follow(assignment, key) {
    this.stop();
    this.current = assignment;
    this.ownerKey = key;
    $("asg-events").replaceChildren();
    this.log(t("ev_created", { space: this.spaceLabel(assignment) }));
    this.render();
    this.listen(assignment.id, key);
  }

  stop() {
    this.abort?.abort();
    clearInterval(this.poller);
    this.abort = null;
  }

  async listen(id, key) {
    const abort = (this.abort = new AbortController());
    try {
      await streamEvents(`/v1/assignments/${id}/events`, {
        key, signal: abort.signal, onEvent: (_, data) => this.onState(data),
      });
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    if (!abort.signal.aborted && ACTIVE.has(this.current?.status)) this.startPolling(id, key);
  }

  startPolling(id, key) {
    this.poller = setInterval(async () => {
      try {
        this.onState(await api(`/v1/assignments/${id}`, { key }));
      } catch {
        // keep the last known state; the next poll may succeed
      }
    }, POLL_MS);
  }

  onState(data) {
    if (!data || typeof data !== "object" || !this.current) return;
    const next = { ...this.current, ...(data.assignment || data) };
    if (next.id && next.id !== this.current.id) return;
    const moved = next.space_id !== this.current.space_id || next.facility_id !== this.current.facility_id;
    if (moved) this.log(t("ev_reassigned", { space: this.spaceLabel(next) }));
    else if (next.status !== this.current.status) this.log(t("ev_status", { status: t(`as_${next.status}`) }));
    this.current = next;
    this.render();
    if (!ACTIVE.has(next.status)) this.stop();
  }

  async cancel() {
    if (!this.current) return;
    try {
      this.onState(await api(`/v1/assignments/${this.current.id}/cancel`, { method: "POST", key: this.ownerKey }));
    } catch (err) {
      showError($("driver-error"), this.message(err));
      return;
    }
    if (ACTIVE.has(this.current.status)) this.onState({ status: "cancelled" });
  }

  spaceLabel(a) {
    return a.space_id || this.ctx.facilities.get(a.facility_id)?.name || a.facility_id || "—";
  }

  log(message) {
    $("asg-events").prepend(h("li", {}, h("time", {}, formatTime(new Date().toISOString())), " ", message));
  }

  render() {
    const a = this.current;
    $("assignment").hidden = !a;
    if (!a) return;
    $("assignment").dataset.status = a.status;
    $("asg-space").textContent = this.spaceLabel(a);
    $("asg-status").textContent = t(`as_${a.status}`);
    $("asg-status").className = `badge as-${a.status}`;
    const facility = this.ctx.facilities.get(a.facility_id);
    $("asg-facility").textContent = facility ? `${facility.name} (${a.facility_id})` : a.facility_id || "";
    $("asg-distance").textContent = formatDistance(a.distance_m);
    $("asg-cancel").hidden = !ACTIVE.has(a.status);
    this.tick();
    this.draw(a);
  }

  tick() {
    const a = this.current;
    if (!a) return;
    const left = ACTIVE.has(a.status) ? Math.max(0, (new Date(a.expires_at) - Date.now()) / 1000) : 0;
    const m = Math.floor(left / 60), s = Math.floor(left % 60);
    $("asg-countdown").textContent = `${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
    $("asg-countdown").classList.toggle("late", left < 60);
  }

  draw(a) {
    this.layer.clearLayers();
    if (a.lat == null || a.lon == null || !ACTIVE.has(a.status)) return;
    const from = this.ctx.point();
    L.polyline([from, [a.lat, a.lon]], { className: "cp-route", dashArray: "6 6", pane: "cp-held" }).addTo(this.layer);
    L.circleMarker([a.lat, a.lon], { radius: 10, className: "cp-held", pane: "cp-held" })
      .bindTooltip(text(`${t("held_space")} ${this.spaceLabel(a)}`)).addTo(this.layer);
  }

  refreshLabels() {
    this.render();
  }
}
