// @ts-check
// The one colour table of Collapse Lab: verdict colours, run palette and label palette, used
// by every page, every chart and the offline report (which inlines this module). The
// stylesheet reads the verdict colours as CSS custom properties set from this table below,
// so CSS holds no copy of them. The verdict tables have a key per kind of GET /api/metrics
// and "pending" (tests/test_metric_registry.py checks them): here, not served, because the
// header and badges are coloured before the catalogue arrives.
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A verdict kind (Api.Verdict's) or "pending": the keys of the verdict tables.
 * @typedef {Api.Verdict["kind"] | "pending"} VerdictColourKind */

/** @type {Record<VerdictColourKind, string>} */
export const VERDICT_COLORS = {
  healthy: "#1a7f37",
  dimensional_collapse: "#b7791f",
  complete_collapse: "#c62828",
  pending: "#6b7280",
};

/** Light backgrounds of the verdict banners and cells, one per verdict kind.
 * @type {Record<VerdictColourKind, string>} */
export const VERDICT_TINTS = {
  healthy: "#e7f6ec",
  dimensional_collapse: "#fdf3e1",
  complete_collapse: "#fdecec",
  pending: "#f3f4f6",
};

// Run colours avoid the verdict green / amber / red so a run's colour never reads as a verdict.
export const RUN_COLORS = [
  "#1f77b4",
  "#9467bd",
  "#17becf",
  "#e377c2",
  "#8c564b",
  "#393b79",
  "#7f7f7f",
  "#bcbd22",
  "#637939",
  "#3182bd",
];

/** Class colours of the embedding pictures (label i gets LABEL_COLORS[i % 20]). */
export const LABEL_COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#393b79",
  "#637939",
  "#8c6d31",
  "#843c39",
  "#7b4173",
  "#3182bd",
  "#e6550d",
  "#31a354",
  "#756bb1",
  "#636363",
];

// Each verdict kind's CSS custom properties are named by its first word (app.css uses
// var(--healthy), var(--healthy-bg), var(--dimensional)...).
if (typeof document !== "undefined") {
  const style = document.documentElement.style;
  for (const kind of /** @type {VerdictColourKind[]} */ (Object.keys(VERDICT_COLORS))) {
    const name = kind.split("_")[0];
    style.setProperty(`--${name}`, VERDICT_COLORS[kind]);
    style.setProperty(`--${name}-bg`, VERDICT_TINTS[kind]);
  }
}
