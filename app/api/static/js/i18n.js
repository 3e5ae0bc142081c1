// Labels in Chinese (default) and English; the choice is kept in localStorage.
const STRINGS = {
  zh: {
    title: "城市智慧停车", tab_driver: "找车位", tab_enforcement: "执法",
    history_title: "近24小时占用率", driver_title: "帮我找车位",
    driver_hint: "点击地图选择位置（默认为地图中心），然后查找附近空闲车位。",
    driver_key: "驾驶员密钥", accessible: "无障碍", ev: "充电桩", your_point: "位置",
    find_space: "查找车位", held_space: "已为您保留车位", distance: "距离", hold_left: "保留剩余",
    cancel: "取消", enf_title: "执法视图", enf_key: "执法密钥", enter: "进入",
    hotspots: "违停热点", last_1h: "近1小时", last_24h: "近24小时", last_7d: "近7天", last_30d: "近30天",
    violations: "当前违停", patrol: "巡查路线", plan_patrol: "从所选位置规划", leave: "退出执法视图",
    updated: "更新于 {time}", offline: "无法连接服务器", rate_limited: "请求过于频繁，稍后自动重试", loading: "加载中…",
    free_of: "{free} / {total} 空闲", free: "空闲", total: "总数",
    kind: "类型", operator: "运营方", hours: "营业时间", public_hours: "对外开放时段", fee: "收费",
    accessible_spaces: "无障碍车位", ev_spaces: "充电车位", observed: "数据时间", status: "状态",
    kind_lot: "停车场", kind_garage: "停车库", kind_curb: "路侧泊位",
    st_spacesAvailable: "有空位", st_almostFull: "车位紧张", st_full: "已满", st_closed: "未开放",
    st_unknown: "未知",
    as_held: "保留中", as_reassigned: "已改派", as_arrived: "已到达", as_expired: "已过期",
    as_cancelled: "已取消", as_lost: "车位被占，附近无空位",
    ev_created: "分配车位 {space}", ev_reassigned: "车位被占，改派至 {space}", ev_status: "状态：{status}",
    need_key: "请先输入密钥", bad_key: "密钥无效或无此权限", no_free_space: "附近没有合适的空闲车位",
    no_history: "暂无历史数据", kind_overstay: "超时停车", kind_no_parking: "禁停区域停车",
    lasted: "已持续 {d}", limit: "限时 {m} 分钟", hot_summary: "{cells} 个网格，共 {count} 起违停",
    hot_none: "该时段无违停", patrol_summary: "{n} 处，步行约 {dist}", patrol_none: "暂无需巡查的违停",
    space: "车位", legend_title: "空闲情况", free_spaces_shown: "显示 {n} 个空闲车位",
    load_failed: "加载失败", rule: "规则", rule_no_parking: "禁止停车", minutes: "{n} 分钟", hours_minutes: "{h} 小时 {m} 分", days_hours: "{d} 天 {h} 小时",
  },
  en: {
    title: "City Smart Parking", tab_driver: "Find parking", tab_enforcement: "Enforcement",
    history_title: "Occupancy, last 24 h", driver_title: "Find me a space",
    driver_hint: "Click the map to choose a point (the map centre by default), then look for a free space nearby.",
    driver_key: "Driver key", accessible: "Accessible", ev: "EV charging", your_point: "Point",
    find_space: "Find me a space", held_space: "Space held for you:", distance: "Distance",
    hold_left: "Hold ends in", cancel: "Cancel", enf_title: "Enforcement view", enf_key: "Enforcement key",
    enter: "Enter", hotspots: "Violation hotspots", last_1h: "Last hour", last_24h: "Last 24 hours",
    last_7d: "Last 7 days", last_30d: "Last 30 days", violations: "Active violations", patrol: "Patrol route",
    plan_patrol: "Plan from chosen point", leave: "Leave enforcement view",
    updated: "Updated {time}", offline: "Cannot reach the server", rate_limited: "Too many requests; retrying shortly", loading: "Loading…",
    free_of: "{free} of {total} free", free: "Free", total: "Total",
    kind: "Kind", operator: "Operator", hours: "Opening hours", public_hours: "Open to the public",
    fee: "Fees", accessible_spaces: "Accessible spaces", ev_spaces: "EV spaces", observed: "Observed",
    status: "Status", kind_lot: "Car park", kind_garage: "Garage", kind_curb: "Curbside",
    st_spacesAvailable: "Spaces available", st_almostFull: "Almost full", st_full: "Full",
    st_closed: "Closed", st_unknown: "Unknown",
    as_held: "Held", as_reassigned: "Reassigned", as_arrived: "Arrived", as_expired: "Expired",
    as_cancelled: "Cancelled", as_lost: "Lost: space taken, none free nearby",
    ev_created: "Assigned space {space}", ev_reassigned: "Space taken, moved to {space}",
    ev_status: "Status: {status}",
    need_key: "Enter a key first", bad_key: "Key not accepted for this view", no_free_space: "No suitable free space nearby",
    no_history: "No history yet", kind_overstay: "Overstay", kind_no_parking: "No-parking zone",
    lasted: "for {d}", limit: "limit {m} min", hot_summary: "Violations: {count} · grid cells: {cells}",
    hot_none: "No violations in this period", patrol_summary: "Stops: {n} · about {dist} on foot",
    patrol_none: "No violations to visit", space: "Space", legend_title: "Availability",
    free_spaces_shown: "{n} free spaces shown",
    load_failed: "Could not load", rule: "Rule", rule_no_parking: "No parking", minutes: "{n} min", hours_minutes: "{h} h {m} min", days_hours: "{d} d {h} h",
  },
};

let current = localStorage.getItem("citypark.lang") === "en" ? "en" : "zh";
const listeners = [];

export function lang() {
  return current;
}

export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function setLang(value) {
  current = value === "en" ? "en" : "zh";
  localStorage.setItem("citypark.lang", current);
  applyI18n();
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return t("days_hours", { d, h });
  if (h > 0) return t("hours_minutes", { h, m });
  return t("minutes", { n: m });
}

export function formatDistance(metres) {
  if (metres == null || Number.isNaN(Number(metres))) return "—";
  return metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
}

export function formatTime(iso, withDate = false) {
  if (!iso) return "—";
  const options = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: window.CITYPARK_CONFIG?.timezone };
  if (withDate) Object.assign(options, { month: "2-digit", day: "2-digit" });
  try {
    return new Intl.DateTimeFormat(current === "zh" ? "zh-CN" : "en-GB", options).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleTimeString();
  }
}
