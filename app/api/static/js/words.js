// Labels of the base map, search box, facility names and the chosen point (issue 18), in both
// languages; kept apart from i18n.js so that these features stay in their own files.
import { lang } from "./i18n.js";

const WORDS = {
  zh: {
    search_placeholder: "搜索停车场、广场、街道…", search_label: "搜索", search_none: "没有找到", search_facility: "停车",
    kind_square: "广场", kind_park: "公园", kind_street: "街道", kind_building: "建筑", kind_residential: "小区",
    kind_district: "城区", no_parking_glyph: "禁停", closed_short: "关", unknown_short: "?",
    point_centre: "地图中心", point_clicked: "您点击的位置", point_search: "查找时使用：{where} {at}",
    point_now: "{where} {at}",
  },
  en: {
    search_placeholder: "Search car parks, squares, streets…", search_label: "Search", search_none: "Nothing found",
    search_facility: "parking",
    kind_square: "square", kind_park: "park", kind_street: "street", kind_building: "building", kind_residential: "housing",
    kind_district: "district", no_parking_glyph: "No parking", closed_short: "shut", unknown_short: "?",
    point_centre: "map centre", point_clicked: "where you clicked", point_search: "Search used: {where} {at}",
    point_now: "{where} {at}",
  },
};

export function w(key, vars = {}) {
  const table = WORDS[lang()] || WORDS.zh;
  let out = table[key] ?? WORDS.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars)) out = out.replaceAll(`{${k}}`, String(v));
  return out;
}
