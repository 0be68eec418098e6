// @ts-check
// Plotly figures for the collapse diagnostics: the one chart builder of Collapse Lab. Pure
// builders (data in, {data, layout} out) shared by the run page (one run, live), the compare
// page (several runs overlaid) and the offline HTML report (report.js, inlined by the API).
// Every plot carries the level a healthy embedding sits at, so collapse reads at a glance.

import { LABEL_COLORS, RUN_COLORS, VERDICT_COLORS, VERDICT_TINTS } from "./colours.js";
import { collapseLoss, numClasses, runConfig, totalEpochs } from "./model.js";
import { PENDING, useVerdicts, verdictKinds, verdictLabel } from "./verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A run as listed or in full (model.js's Run; types are never imported by a relative path
 * here: backend/report_page.py inlines this module).
 * @typedef {Api.RunSummary & Partial<Api.RunDetail>} Run */
/** The representation a figure shows: the projector output z or the backbone's h.
 * @typedef {"projector" | "backbone"} Which */
/** A Plotly trace, shape or annotation: its attributes are Plotly's, not checked here.
 * @typedef {Record<string, unknown>} PlotlyObject */
/** A Plotly axis, with what these figures set.
 * @typedef {{title?: {text: string, standoff?: number}, type?: "category" | "log",
 *   range?: number[], rangemode?: "tozero" | "normal", autorange?: boolean, dtick?: number,
 *   tickformat?: string, zeroline?: boolean, showgrid?: boolean, automargin?: boolean,
 *   overlaying?: "y", side?: "right", scaleanchor?: "x", scaleratio?: number,
 *   tickmode?: "auto", nticks?: number}} Axis */
/** A Plotly layout, with what these figures set (baseLayout, then each figure's own).
 * @typedef {{title: {text: string, font: {size: number}, x: number, xanchor: "left",
 *   subtitle?: {text: string, font: {size: number}}, yref?: "container", y?: number,
 *   yanchor?: "top", pad?: {t: number}},
 *   margin: {l: number, r: number, t: number, b: number}, xaxis: Axis, yaxis: Axis,
 *   yaxis2?: Axis, legend: PlotlyObject, hovermode: "x unified" | "closest",
 *   font: {family: string, size: number}, paper_bgcolor: string, plot_bgcolor: string,
 *   uirevision: string, barmode?: "group", height?: number, shapes?: PlotlyObject[],
 *   annotations?: PlotlyObject[]}} Layout */
/** A figure for Plotly.react.
 * @typedef {{data: PlotlyObject[], layout: Layout}} Figure */
/** The part of Plotly.js used here: a global, set by the page's script tag (a report inlines
 * it).
 * @typedef {{
 *   react: (div: HTMLElement, data: PlotlyObject[], layout: Layout, config: object) =>
 *     Promise<HTMLElement>,
 *   extendTraces: (div: HTMLElement, update: {x: number[][], y: unknown[][]},
 *     indices: number[]) => Promise<HTMLElement>,
 *   relayout: (div: HTMLElement, update: Record<string, unknown>) => Promise<HTMLElement>,
 * }} PlotlyApi */
/** @typedef {Window & {Plotly?: PlotlyApi}} PlotlyWindow */
/** A div Plotly has drawn a line figure into: Plotly keeps the figure on it (`data` is absent
 * before the first draw; a line figure's x axis always has a range).
 * @typedef {{xaxis: {range: number[]}, yaxis2?: {range?: number[]}}} LinePlotLayout
 * @typedef {HTMLElement & {data?: unknown[], layout: LinePlotLayout}} LinePlotDiv */

/** What the reference lines of one run's figures need (chartContext); several runs' figures
 * get the values they share (commonContext). `dim` is d of the representation shown, `zDim`
 * d of z (the projector's output: what the method internals are measured on).
 * @typedef {{dim?: number | null, zDim?: number | null, epochs?: number | null,
 *   numClasses?: number | null, collapseLoss?: number | null,
 *   baseLr?: number | null}} ChartContext */
/** One run of a figure: its name and colour (when several are overlaid), its epoch records
 * and its chart context.
 * @typedef {{name?: string, color?: string, records: Api.EpochRecord[], ctx?: ChartContext}}
 *   Series */
/** A metric's value in an epoch record, for the representation shown.
 * @typedef {(record: Api.EpochRecord | null | undefined, which: Which) => unknown} ValueGetter */
/** A reference level drawn across a chart, on its first axis or its second.
 * @typedef {{y: number, label: string, color: string, axis?: "y" | "y2"}} RefLine */
/** A metric's help line under its chart (Metric.help).
 * @typedef {Pick<Api.MetricEntry, "title" | "help" | "paper">} HelpLine */
/** A line of a line chart.
 * @typedef {{name: string, get: ValueGetter, dash: string | undefined,
 *   axis: Api.MetricEntry["axis"], guest: boolean}} LineTrace */
/** Whether a chart applies to a run, from its epoch records.
 * @typedef {(records: Api.EpochRecord[], which: Which) => boolean} OnlyIf */
/** A line chart of the metric catalogue (lineChart), as lineFigure draws it. `refs` are the
 * levels of its own metrics that the runs (each run's records) have values of.
 * @typedef {{id: string, title: string, yTitle: string, y2Title: Api.Chart["y2_title"],
 *   y2Range: Api.Chart["y2_range"], y2RangeMode: Api.Chart["y2_range_mode"],
 *   group: Api.Chart["group"],
 *   hideEmpty: Api.Chart["hide_when_empty"], help: HelpLine[], yRange: Api.Chart["y_range"],
 *   yRangeMode: Api.Chart["y_range_mode"], yFormat: Api.Chart["y_format"], traces: LineTrace[],
 *   refs: (ctx: ChartContext, runs: Api.EpochRecord[][], which: Which) => RefLine[],
 *   onlyIf: OnlyIf | null}} LineMetric */
/** A metric of the catalogue that sweeps use (its `sweep` set).
 * @typedef {Api.MetricEntry & {sweep: Api.SweepUse}} SweepEntry */
/** A metric a sweep map can be shaded by (sweepMetric), read from a run's or a cell's `final`.
 * @typedef {{id: string, title: string, label: string, default: boolean | undefined,
 *   get: (final: Api.FinalMeans | Api.FinalMetrics) => number | null | undefined,
 *   max: (sweep: Api.SweepDetail) => number | undefined}} SweepMetric */
/** A projection as columns (projectionFrame): probe i at (x[i], y[i]), its class labels[i].
 * @typedef {{epoch: number, x: number[], y: number[], labels: number[]}} Frame */
/** Axis ranges (projectionRange): [low, high] of each axis.
 * @typedef {{x: number[], y: number[]}} Range */

/** Resolves once Plotly.js (loaded `async` by the page, 4 MB) is ready: the rest of the page
 * renders meanwhile, so first paint never waits for it.
 * @type {Promise<PlotlyApi | undefined>} */
export const plotlyReady = new Promise((resolve, reject) => {
  const page = /** @type {PlotlyWindow} */ (window);
  if (page.Plotly) {
    resolve(page.Plotly);
    return;
  }
  // every page that imports this module loads Plotly.js with one (a report inlines it)
  const script = /** @type {HTMLScriptElement} */ (document.querySelector("script[data-plotly]"));
  const failed = () => reject(new Error("could not load Plotly.js"));
  if (script.dataset.failed) {
    failed(); // before this module ran: the tag's own onerror marked it
    return;
  }
  script.addEventListener("load", () => resolve(page.Plotly));
  script.addEventListener("error", failed);
});

/** User text (a run's or a sweep's name, a grid key or value) as Plotly shows it literally:
 * Plotly renders a subset of HTML in trace names, legends, titles, axis labels and hover text
 * (a run named `<a href=...>` was a link in the legend), so `&`, `<` and `>` become entities
 * (which Plotly shows as the characters). Every user string reaches Plotly through this.
 * @param {unknown} text @returns {string} */
export function plotlyText(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

const HEALTHY = VERDICT_COLORS.healthy;
const COLLAPSED = VERDICT_COLORS.complete_collapse;

const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["lasso2d", "select2d"],
};

/** The record's metrics of the representation shown; {} when it has none (a backbone's may be
 * null).
 * @param {Api.EpochRecord | null | undefined} record @param {Which} which
 * @returns {Partial<Api.EmbeddingMetrics>} */
const rep = (record, which) => (record && record[which]) || {};

/** What the reference lines of one run's figures need: embedding size, planned epochs, chance
 * level, the loss's collapse level (from the method catalogue, when loaded) and the
 * configured learning rate.
 * @param {Run} run @param {Api.EpochRecord[]} records @param {Which} which
 * @param {{methods: {name: string, collapsedLoss: number | null}[]} | null} catalogue the
 *   method catalogue (model.js's normaliseCatalogue) @returns {ChartContext} */
export function chartContext(run, records, which, catalogue) {
  // a list summary has no batch_size or lr: they read as undefined
  const config = /** @type {Partial<Api.RunConfig>} */ (runConfig(run));
  const last = records[records.length - 1];
  const batch = config.batch_size || 256;
  return {
    dim: last && last[which] ? last[which].dim : which === "projector" ? config.proj_dim : null,
    zDim: last && last.projector ? last.projector.dim : config.proj_dim,
    epochs: totalEpochs(run),
    numClasses: numClasses(run),
    collapseLoss: collapseLoss(run, catalogue),
    baseLr: config.lr ? (config.lr * batch) / 256 : null,
  };
}

// ---------------------------------------------------------------- the metric catalogue

/** The line charts, one per line chart of the metric catalogue (GET /api/metrics, where every
 * metric is declared once: contract/metrics.py); set by useMetricCatalogue before drawing.
 * Each has `traces` that pull values out of an epoch record for the chosen representation
 * ("backbone" | "projector") and `refs`, its metrics' healthy and collapsed levels. */
/** @type {LineMetric[]} */
let LINE_METRICS = [];
/** What a sweep map can be shaded by, and its line plot show, per run (its last epoch).
 * @type {SweepMetric[]} */
export let SWEEP_METRICS = [];
/** Ids of every chart in page order (line charts and the spectrum, shares and plane).
 * @type {string[]} */
export let CHART_IDS = [];
/** The spectrum, shares and plane charts' declarations (title, y-axis title), by id.
 * @type {Map<string, Api.Chart>} */
let SPECIAL_CHARTS = new Map();

/** A special chart's title and y-axis title as the catalogue declares them.
 * @param {"spectrum" | "shares" | "plane"} id @returns {{title: string, yTitle: string}} */
function declared(id) {
  const chart = SPECIAL_CHARTS.get(id);
  return { title: chart ? chart.title : id, yTitle: (chart && chart.y_title) || "" };
}

/** Levels that depend on the run (LevelContext in contract/metrics.py): value and its text.
 * @type {Record<NonNullable<Api.Level["context"]>,
 *   (ctx: ChartContext) => {y: number, text: string} | null>} */
const CONTEXT_LEVELS = {
  dim: (ctx) => (ctx.dim ? { y: ctx.dim, text: String(ctx.dim) } : null),
  chance: (ctx) => (ctx.numClasses ? { y: 1 / ctx.numClasses, text: `1/${ctx.numClasses}` } : null),
  collapse_loss: (ctx) =>
    typeof ctx.collapseLoss === "number"
      ? { y: ctx.collapseLoss, text: String(ctx.collapseLoss).replace("-", "−") }
      : null,
  base_lr: (ctx) =>
    ctx.baseLr ? { y: ctx.baseLr, text: String(Number(ctx.baseLr.toPrecision(4))) } : null,
  z_dim: (ctx) => (ctx.zDim ? { y: ctx.zDim, text: String(ctx.zDim) } : null),
  z_dim_minus_one: (ctx) => (ctx.zDim ? { y: ctx.zDim - 1, text: String(ctx.zDim - 1) } : null),
};
const DASHES = [undefined, "dash", "dot"];
const GUEST_COLOR = "#8a8f98"; // a schedule or a reference value drawn beside the metrics

/** A metric's value in an epoch record: of the embedding shown, of the run, or of its
 * method's logs (a metric's name is a field of the one it is measured on).
 * @param {Api.MetricEntry} metric @returns {ValueGetter} */
function valueGetter(metric) {
  if (metric.measured_on === "embedding")
    return (r, w) => /** @type {Record<string, unknown>} */ (rep(r, w))[metric.name];
  if (metric.measured_on === "method_internals")
    return (r) => (r && r.logs ? r.logs[metric.name] : undefined);
  return (r) => (r ? /** @type {Record<string, unknown>} */ (r)[metric.name] : undefined);
}

/** The value the runs agree on: the one every run that has one has, else null (several runs
 * overlaid with different values: no common level).
 * @param {(number | null)[]} values @returns {number | null} */
function agreed(values) {
  const found = values.filter((v) => v !== null);
  return found.length && found.every((v) => v === found[0]) ? found[0] : null;
}

/** A metric's first value in a run's records, or null.
 * @param {ValueGetter} get @param {Api.EpochRecord[]} records @param {Which} which
 * @returns {number | null} */
function firstValue(get, records, which) {
  for (const record of records) {
    const value = nullable(get(record, which));
    if (typeof value === "number") return value;
  }
  return null;
}

/** A reference level as a line {y, label, color}, or null when these runs do not give it (a
 * field or a first value the overlaid runs disagree on gives none).
 * @param {Api.Level} level @param {string} color @param {ChartContext} ctx
 * @param {Api.EpochRecord[][]} runs each run's records @param {Which} which
 * @param {ValueGetter} own the level's metric @param {(name: string) => ValueGetter} getter
 * @returns {RefLine | null} */
function resolveLevel(level, color, ctx, runs, which, own, getter) {
  const times = level.times === undefined || level.times === null ? 1 : level.times;
  const digits = level.digits;
  /** @param {number} y */
  const text = (y) =>
    digits !== null && digits !== undefined
      ? y.toFixed(digits)
      : times === 1
        ? String(y)
        : String(Number(y.toPrecision(3)));
  /** @type {{y: number, text: string} | null} */
  let found = null;
  if (level.value !== null && level.value !== undefined)
    found = { y: level.value, text: String(level.value) };
  else if (level.context) {
    const base = CONTEXT_LEVELS[level.context](ctx);
    found = base && times !== 1 ? { y: base.y * times, text: text(base.y * times) } : base;
  } else if (level.field || level.epoch0) {
    const get = level.field ? getter(level.field) : own;
    const y = agreed(runs.map((records) => firstValue(get, records, which)));
    if (y !== null) found = { y: y * times, text: text(y * times) };
  }
  return found ? { y: found.y, label: level.label.replace("{value}", found.text), color } : null;
}

/** One line per metric of a chart: its title and what a change of it means (Metric.help).
 * @param {Api.MetricEntry[]} metrics @returns {HelpLine[]} */
function helpLines(metrics) {
  return metrics
    .filter((m) => m.help)
    .map((m) => ({ title: m.title, help: m.help, paper: m.paper }));
}

/** Reference lines at the same height, axis and colour as one line, their labels joined
 * (two metrics whose levels coincide: Barlow Twins' two terms at 0).
 * @param {RefLine[]} refs @returns {RefLine[]} */
function mergeCoinciding(refs) {
  /** @type {Map<string, RefLine>} */
  const merged = new Map();
  for (const ref of refs) {
    const key = JSON.stringify([ref.axis, ref.y, ref.color]);
    const there = merged.get(key);
    if (!there) merged.set(key, { ...ref });
    else if (!there.label.split(" · ").includes(ref.label)) there.label += ` · ${ref.label}`;
  }
  return [...merged.values()];
}

/** A line chart of the catalogue with its metrics as traces, in the shape lineFigure draws;
 * guests (Chart.also: metrics of another chart, on the axis given here) are drawn only where
 * a run has them, without their levels or help. A metric's levels are drawn only where a run
 * has values of it (a family's panel shows the lines of the method's own signals).
 * @param {Api.Chart} chart @param {Api.MetricEntry[]} metrics @param {Api.MetricEntry[]} guests
 * @param {(name: string) => ValueGetter} getter a catalogue metric's value getter
 * @returns {LineMetric} */
function lineChart(chart, metrics, guests, getter) {
  const traces = [...metrics, ...guests].map((metric, i) => ({
    name: metric.title,
    get: valueGetter(metric),
    dash: DASHES[i % DASHES.length],
    axis: metric.axis,
    guest: i >= metrics.length,
  }));
  const own = traces.filter((t) => !t.guest);
  /** The own metrics' levels, healthy ones first, with the metric each belongs to. */
  const levels = /** @type {const} */ (["healthy", "collapsed"]).flatMap((kind) =>
    metrics.flatMap((metric, i) => {
      const level = metric[kind];
      return level
        ? [{ level, color: kind === "healthy" ? HEALTHY : COLLAPSED, trace: own[i] }]
        : [];
    }),
  );
  /** @param {ValueGetter} get @param {Api.EpochRecord[][]} runs @param {Which} which */
  const hasValues = (get, runs, which) =>
    runs.some((records) => records.some((r) => nullable(get(r, which)) !== null));
  return {
    id: chart.id,
    title: chart.title,
    yTitle: chart.y_title,
    y2Title: chart.y2_title,
    y2Range: chart.y2_range,
    y2RangeMode: chart.y2_range_mode,
    group: chart.group,
    hideEmpty: chart.hide_when_empty,
    help: helpLines(metrics),
    yRange: chart.y_range,
    yRangeMode: chart.y_range_mode,
    yFormat: chart.y_format,
    traces,
    refs: (ctx, runs, which) =>
      mergeCoinciding(
        levels
          .filter(({ trace }) => hasValues(trace.get, runs, which))
          .map(({ level, color, trace }) => {
            const ref = resolveLevel(level, color, ctx, runs, which, trace.get, getter);
            /** @type {RefLine["axis"]} */
            const axis = trace.axis === "y2" ? "y2" : "y";
            return ref ? { ...ref, axis } : null;
          })
          .filter((ref) => ref !== null),
      ),
    // a chart left out when empty is shown when any of its own metrics (either axis) has a
    // value: a guest schedule alone does not bring it
    onlyIf: chart.hide_when_empty
      ? (records, w) => own.some((t) => hasValues(t.get, [records], w))
      : null,
  };
}

/** A sweep-eligible metric as the sweep map, line plot and table read it from a run's or a
 * cell's `final`.
 * @param {SweepEntry} metric @returns {SweepMetric} */
function sweepMetric(metric) {
  return {
    id: metric.name,
    title: metric.title,
    label: metric.sweep.label,
    default: metric.sweep.default,
    // a sweep metric's name is a field of `final` (contract/metrics.py)
    get: (f) => /** @type {Record<string, number | null>} */ (f)[metric.name],
    max: (sweep) =>
      metric.sweep.scale_max !== null ? metric.sweep.scale_max : sweepMax(sweep, metric.name),
  };
}

/** Build the charts and the sweep metrics from the metric catalogue (GET /api/metrics), and
 * take the verdict kinds and their words from it (verdict.js).
 * @param {Api.MetricCatalogue} catalogue */
export function useMetricCatalogue(catalogue) {
  useVerdicts(catalogue);
  const byName = new Map(catalogue.metrics.map((m) => [m.name, m]));
  // Chart.also and Level.field name metrics of the catalogue (contract/metrics.py checks)
  /** @param {string} name */
  const entry = (name) => /** @type {Api.MetricEntry} */ (byName.get(name));
  LINE_METRICS = catalogue.charts
    .filter((c) => c.kind === "line")
    .map((chart) =>
      lineChart(
        chart,
        catalogue.metrics.filter((m) => m.chart === chart.id && !m.derived),
        Object.entries(chart.also || {}).map(([name, axis]) => ({ ...entry(name), axis })),
        (name) => valueGetter(entry(name)),
      ),
    );
  SWEEP_METRICS = /** @type {SweepEntry[]} */ (catalogue.metrics.filter((m) => m.sweep)).map(
    sweepMetric,
  );
  SWEEP_METRICS.sort((a, b) => Number(b.default) - Number(a.default)); // the default first
  CHART_IDS = catalogue.charts.map((c) => c.id);
  SPECIAL_CHARTS = new Map(catalogue.charts.filter((c) => c.kind !== "line").map((c) => [c.id, c]));
}

/** The context values every overlaid run shares: a reference level (the configured lr, the
 * loss's collapse level, d, chance) is drawn only when it holds for all of them.
 * @param {Series[]} series @returns {ChartContext} */
function commonContext(series) {
  const [first, ...rest] = series.map((s) => /** @type {Record<string, unknown>} */ (s.ctx || {}));
  if (!first) return {};
  // the entries the runs' contexts share: a ChartContext
  return /** @type {ChartContext} */ (
    Object.fromEntries(
      Object.entries(first).filter(([key, value]) => rest.every((ctx) => ctx[key] === value)),
    )
  );
}

// Two levels of one axis this close (relative to the larger, or to the axis's span where it
// is known: a label is about this share of a chart's height) would print their labels over
// each other: the lower one is labelled at the left end of its line (below it, the label of
// a level at the foot of the axis would print over the epoch numbers).
const CLOSE_LEVELS = 0.05;

/** Reference lines as layout shapes + annotations spanning the full width.
 * @param {(RefLine | null)[]} refs @param {boolean} [hasY2]
 * @param {{y?: number, y2?: number}} [spans] each axis's span of values, where known */
function referenceLines(refs, hasY2 = false, spans = {}) {
  /** @type {PlotlyObject[]} */
  const shapes = [];
  /** @type {PlotlyObject[]} */
  const annotations = [];
  const drawn = /** @type {RefLine[]} */ (refs.filter(Boolean))
    .filter((ref) => ref.y !== null && ref.y !== undefined && !Number.isNaN(ref.y))
    .filter((ref) => ref.axis !== "y2" || hasY2) // a level of a second-axis metric this run lacks
    .sort((a, b) => b.y - a.y); // from the top: stable, so of two equal heights the first
  /** @type {Map<string, number>} per axis, the height of the last label at the right end */
  const above = new Map();
  for (const ref of drawn) {
    const axis = ref.axis || "y";
    const last = above.get(axis);
    // a level at or just under one labelled at the right (a healthy and a collapsed one) is
    // labelled at the left
    const left =
      last !== undefined &&
      last - ref.y <=
        CLOSE_LEVELS *
          Math.max(Math.abs(last), Math.abs(ref.y), spans[axis === "y2" ? "y2" : "y"] || 0);
    if (!left) above.set(axis, ref.y);
    shapes.push({
      type: "line",
      xref: "paper",
      x0: 0,
      x1: 1,
      yref: axis,
      y0: ref.y,
      y1: ref.y,
      line: { color: ref.color, width: 1.5, dash: "dash" },
    });
    annotations.push({
      xref: "paper",
      x: left ? 0 : 1,
      xanchor: left ? "left" : "right",
      yref: axis,
      y: ref.y,
      yanchor: "bottom",
      text: ref.label,
      showarrow: false,
      font: { size: 10, color: ref.color },
    });
  }
  return { shapes, annotations };
}

const LEGEND_SHORT_NAME = 35; // characters: two such legend entries share a line of a card
const LEGEND_LINE = 19; // pixels: a legend line at font size 11
// The characters of a chart title that fit on one line of a card at 14 px, on a phone and wider
const TITLE_CHARS_PHONE = 44;
const TITLE_CHARS = 80;
// The characters of a y-axis title (12 px) that fit along a chart's plotting height, on a
// phone's 300 px card and a wider screen's 360 px one (app.css's .plot)
const AXIS_TITLE_CHARS_PHONE = 26;
const AXIS_TITLE_CHARS = 40;
// ... and of a chart's subtitle (10 px) along a card's width
const SUBTITLE_CHARS_PHONE = 62;
const SUBTITLE_CHARS = 100;

/** Whether the page shows its phone layout: app.css declares the width, in the media query
 * that sets `--layout`. @returns {boolean} */
function phoneLayout() {
  if (typeof document === "undefined") return false;
  const layout = getComputedStyle(document.documentElement).getPropertyValue("--layout");
  return layout.trim() === "phone";
}

/** A title broken at a space where it is longer than ``room`` characters (Plotly does not
 * wrap titles: a long chart title is cut at the card's edge, a long axis title runs past the
 * plot into the chart's title).
 * @param {string} title @param {number} room @returns {string[]} its lines */
function titleLines(title, room) {
  const lines = [];
  let rest = title;
  while (rest.length > room) {
    const cut = rest.lastIndexOf(" ", room);
    if (cut <= 0) break;
    lines.push(rest.slice(0, cut));
    rest = rest.slice(cut + 1);
  }
  return [...lines, rest];
}

/** A y-axis title, in lines that fit along the plot's height. @param {string} title */
function axisTitle(title) {
  const room = phoneLayout() ? AXIS_TITLE_CHARS_PHONE : AXIS_TITLE_CHARS;
  return titleLines(title, room).join("<br>");
}

/** @param {string} title @param {string} xTitle @param {string} yTitle @returns {Layout} */
function baseLayout(title, xTitle, yTitle) {
  const lines = titleLines(title, phoneLayout() ? TITLE_CHARS_PHONE : TITLE_CHARS);
  return {
    title: { text: lines.join("<br>"), font: { size: 14 }, x: 0.02, xanchor: "left" },
    margin: { l: 60, r: 20, t: 40 + 18 * (lines.length - 1), b: 45 },
    xaxis: {
      title: { text: xTitle, standoff: 4 },
      zeroline: false,
      rangemode: "tozero",
      automargin: true,
    },
    yaxis: { title: { text: axisTitle(yTitle) }, zeroline: false, automargin: true },
    legend: { orientation: "h", yanchor: "top", y: -0.2, x: 0, font: { size: 11 } },
    hovermode: "x unified",
    font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fafafa",
    uirevision: "keep",
  };
}

/**
 * Line figure for one metric across one or more runs.
 * @param {LineMetric} metric  one of LINE_METRICS
 * @param {Series[]} series  [{name, color, records, ctx}] one entry per run
 * @param {Which} which
 * @returns {Figure}
 */
function lineFigure(metric, series, which) {
  /** @type {PlotlyObject[]} */
  const data = [];
  const many = series.length > 1;
  // a second-axis schedule, a guest of another chart, or a line of a family's panel this
  // method does not log, is left out for each run that does not have it (a comparison's
  // DINO teacher chart lists no I-JEPA run)
  /** @param {LineTrace} trace */
  const optional = (trace) => trace.axis === "y2" || Boolean(trace.guest) || metric.hideEmpty;
  /** @param {{records: Api.EpochRecord[]}} run @param {LineTrace} trace */
  const has = (run, trace) => run.records.some((r) => nullable(trace.get(r, which)) !== null);
  series.forEach((run) => {
    metric.traces.forEach((trace, traceIndex) => {
      if (optional(trace) && !has(run, trace)) return;
      // a guest (a schedule, ln K) is context, not a measurement: grey, thin, dotted, faded
      // and without markers, so a learning rate decaying to 0 never reads as the chart's
      // metric collapsing onto its collapsed level
      const color = many ? run.color : trace.guest ? GUEST_COLOR : RUN_COLORS[traceIndex];
      data.push({
        type: "scatter",
        mode: trace.guest ? "lines" : "lines+markers",
        name: many
          ? metric.traces.length > 1
            ? `${plotlyText(run.name)} · ${trace.name}`
            : plotlyText(run.name)
          : trace.name,
        x: run.records.map((r) => r.epoch),
        y: run.records.map((r) => nullable(trace.get(r, which))),
        yaxis: trace.axis === "y2" ? "y2" : "y",
        line: trace.guest
          ? { color, width: 1.5, dash: "dot" }
          : { color, width: trace.axis === "y2" ? 1 : 2, dash: trace.dash },
        opacity: trace.guest ? 0.7 : 1,
        marker: { size: 5, color },
        connectgaps: false,
      });
    });
  });
  const layout = baseLayout(metric.title, "epoch", metric.yTitle);
  if (metric.yFormat) layout.yaxis.tickformat = metric.yFormat;
  if (metric.yRange) layout.yaxis.range = metric.yRange;
  if (metric.yRangeMode) layout.yaxis.rangemode = metric.yRangeMode;
  const allRecords = series.flatMap((s) => s.records);
  const secondAxisUsed = metric.traces.some(
    (t) => t.axis === "y2" && allRecords.some((r) => nullable(t.get(r, which)) !== null),
  );
  if (metric.y2Title && secondAxisUsed) {
    layout.yaxis2 = {
      title: { text: axisTitle(metric.y2Title || "") },
      overlaying: "y",
      side: "right",
      zeroline: false,
      showgrid: false,
      // its own round ticks: Plotly's default for an overlaying axis puts them at the left
      // axis's gridlines, at values such as 0.02188
      tickmode: "auto",
      nticks: 6,
    };
    if (metric.y2Range) layout.yaxis2.range = metric.y2Range;
    else if (metric.y2RangeMode === "tozero" && metric.yRange && metric.yRange[0] < 0) {
      // the left axis starts just under 0: so does the right one, their zeros level
      const top = 1.05 * Math.max(0, ...axisValues(metric, allRecords, which, "y2"));
      if (top > 0) layout.yaxis2.range = [(top * metric.yRange[0]) / metric.yRange[1], top];
    }
    if (metric.y2RangeMode) layout.yaxis2.rangemode = metric.y2RangeMode;
    layout.margin.r = 60;
  }
  const runs = series.map((s) => s.records);
  const refs = series.length ? metric.refs(commonContext(series), runs, which) : [];
  Object.assign(
    layout,
    referenceLines(refs, Boolean(layout.yaxis2), axisSpans(metric, allRecords, which, refs)),
  );
  const maxEpoch = Math.max(
    1,
    ...series.map((s) => (s.ctx && s.ctx.epochs ? s.ctx.epochs : 0)),
    ...allRecords.map((r) => r.epoch),
  );
  layout.xaxis.range = [-0.3, maxEpoch + 0.3];
  layout.xaxis.dtick = epochTick(maxEpoch);
  return { data, layout };
}

/** How far each axis of a line chart reaches: its fixed range, else its values and levels.
 * @param {LineMetric} metric @param {Api.EpochRecord[]} records @param {Which} which
 * @param {(RefLine | null)[]} refs @returns {{y: number, y2: number}} */
function axisSpans(metric, records, which, refs) {
  /** @param {"y" | "y2"} axis */
  const span = (axis) => {
    const levels = refs.flatMap((ref) => (ref && (ref.axis || "y") === axis ? [ref.y] : []));
    const values = [...axisValues(metric, records, which, axis), ...levels];
    return values.length ? Math.max(...values) - Math.min(...values) : 0;
  };
  const fixed = metric.yRange ? metric.yRange[1] - metric.yRange[0] : null;
  return { y: fixed ?? span("y"), y2: span("y2") };
}

/** The finite values a line chart's traces on one axis take over these records.
 * @param {LineMetric} metric @param {Api.EpochRecord[]} records @param {Which} which
 * @param {"y" | "y2"} axis @returns {number[]} */
function axisValues(metric, records, which, axis) {
  return metric.traces
    .filter((t) => (t.axis === "y2" ? "y2" : "y") === axis)
    .flatMap((t) => records.map((r) => nullable(t.get(r, which))))
    .filter((v) => v !== null && Number.isFinite(v))
    .map(Number);
}

/** Whole-epoch ticks, at most about ten of them.
 * @param {number} maxEpoch */
function epochTick(maxEpoch) {
  return Math.max(1, Math.ceil(maxEpoch / 10));
}

/** The value, or null for none (undefined, null, NaN).
 * @template T @param {T} value @returns {NonNullable<T> | null} */
function nullable(value) {
  return value === undefined || value === null || Number.isNaN(value) ? null : value;
}

/** The values one record adds to each trace of a single-run line figure (for extendTraces).
 * @param {LineMetric} metric @param {Api.EpochRecord} record @param {Which} which */
function lineExtension(metric, record, which) {
  return {
    x: metric.traces.map(() => [record.epoch]),
    y: metric.traces.map((trace) => [nullable(trace.get(record, which))]),
  };
}

/** Heatmap epoch × index of log singular values, with the effective rank drawn over it.
 * @param {Api.EpochRecord[]} records @param {Which} which @param {ChartContext} [ctx]
 * @returns {Figure} */
function spectrumFigure(records, which, ctx = {}) {
  const withSpectrum = records.filter((r) => Array.isArray(rep(r, which).spectrum));
  // withSpectrum's records have a spectrum
  const length = Math.max(
    0,
    ...withSpectrum.map((r) => /** @type {number[]} */ (rep(r, which).spectrum).length),
  );
  const z = [];
  for (let index = 0; index < length; index += 1) {
    z.push(
      withSpectrum.map((r) => nullable(/** @type {number[]} */ (rep(r, which).spectrum)[index])),
    );
  }
  const epochs = withSpectrum.map((r) => r.epoch);
  const data = [
    {
      type: "heatmap",
      x: epochs,
      y: Array.from({ length }, (_, i) => i + 1),
      z,
      colorscale: "Viridis",
      colorbar: { title: { text: "log σ", side: "right" }, thickness: 12 },
      hovertemplate: "epoch %{x}<br>index %{y}<br>log σ %{z:.2f}<extra></extra>",
      name: "log singular value",
    },
    {
      type: "scatter",
      mode: "lines+markers",
      x: epochs,
      y: withSpectrum.map((r) => nullable(rep(r, which).effective_rank)),
      name: "effective rank",
      line: { color: "#ffffff", width: 2 },
      marker: { size: 4, color: "#ffffff" },
      hovertemplate: "epoch %{x}<br>effective rank %{y:.1f}<extra></extra>",
    },
  ];
  const spectrum = declared("spectrum");
  const layout = baseLayout(spectrum.title, "epoch", spectrum.yTitle);
  layout.hovermode = "closest";
  layout.yaxis.autorange = true;
  layout.xaxis.range = [
    Math.min(0, ...epochs) - 0.5,
    Math.max(1, ctx.epochs || 0, ...epochs) + 0.5,
  ];
  layout.xaxis.dtick = epochTick(layout.xaxis.range[1]);
  const dim = ctx.dim;
  Object.assign(
    layout,
    referenceLines([
      dim && length // no spectrum yet: no index to name
        ? {
            y: Math.min(dim, length),
            label: `healthy: spectrum stays flat up to index ${Math.min(dim, length)}`,
            color: HEALTHY,
          }
        : null,
    ]),
  );
  return { data, layout };
}

/** The record a per-epoch picture shows: the one at `epoch` (the slider's), else the latest
 * before it, else (no epoch chosen yet, or none that early) the run's last.
 * @param {Api.EpochRecord[]} records @param {number | null} [epoch] */
function recordAt(records, epoch = null) {
  if (!records.length) return null;
  if (epoch === null || epoch === undefined) return records[records.length - 1];
  const before = records.filter((r) => r.epoch <= epoch);
  return before.length ? before[before.length - 1] : records[records.length - 1];
}

/** The panel's help line (the subtitle: it travels with the figure to every page and the
 * report). */
const SHARES_HELP =
  "Each bar: one principal direction's share of the variance of z/‖z‖, near 1/d when healthy; " +
  "dimensional collapse piles it onto a few bars (shares ignore scale: complete collapse " +
  "shows in the spread and the picture).";

/**
 * Dimensional collapse at one epoch: the top principal directions' share of the variance of
 * z/‖z‖ (the record's variance_shares), one bar per direction, one trace per run, with the
 * isotropic share 1/d as the reference line.
 * @param {Series[]} series
 * @param {Which} which
 * @param {number | null} [epoch]  the epoch shown (the slider's); null: each run's last
 * @returns {Figure}
 */
export function varianceSharesFigure(series, which, epoch = null) {
  const shown = series.map((s) => ({ run: s, record: recordAt(s.records, epoch) }));
  const data = shown.map(({ run, record }, i) => {
    const shares = (record && rep(record, which).variance_shares) || [];
    const color = series.length > 1 ? run.color : RUN_COLORS[0];
    return {
      type: "bar",
      name:
        series.length > 1
          ? `${plotlyText(run.name)}${record ? ` · epoch ${record.epoch}` : ""}`
          : "share of variance",
      x: shares.map((_, k) => k + 1),
      y: shares,
      marker: { color },
      hovertemplate:
        "direction %{x}: %{y:.1%} of the variance" +
        `<extra>${series.length > 1 ? plotlyText(run.name) : ""}</extra>`,
      offsetgroup: String(i),
    };
  });
  const epochs = [
    ...new Set(
      // the records the filter kept
      shown.filter((s) => s.record).map((s) => /** @type {Api.EpochRecord} */ (s.record).epoch),
    ),
  ];
  const shares = declared("shares");
  const title = shares.title + (epochs.length === 1 ? ` · epoch ${epochs[0]}` : "");
  const layout = baseLayout(title, "principal direction (1 = largest)", shares.yTitle);
  const help = titleLines(SHARES_HELP, phoneLayout() ? SUBTITLE_CHARS_PHONE : SUBTITLE_CHARS);
  layout.title.subtitle = { text: help.join("<br>"), font: { size: 10 } };
  // the title held at the top, its lines and the help's above the plot (Plotly centres a
  // title in the top margin: a margin grown for the help would push the help onto the bars)
  Object.assign(layout.title, { yref: "container", y: 1, yanchor: "top", pad: { t: 10 } });
  layout.margin.t += 14 * help.length + 4;
  layout.hovermode = "closest";
  layout.barmode = "group";
  layout.xaxis.dtick = 1;
  layout.xaxis.rangemode = "normal";
  layout.yaxis.tickformat = ".0%";
  layout.yaxis.rangemode = "tozero";
  // before the first epoch: the whole 0-100 % scale and the first directions, rather than
  // Plotly's default span of a few percent rounded to repeating ticks
  if (!shown.some((s) => s.record)) {
    layout.yaxis.range = [0, 1];
    layout.xaxis.range = [0.5, 10.5];
  }
  const dim = commonContext(series).dim;
  Object.assign(
    layout,
    referenceLines([
      dim ? { y: 1 / dim, label: `isotropic 1/d = 1/${dim}`, color: HEALTHY } : null,
    ]),
  );
  if (data.every((trace) => !trace.y.length)) {
    // variance_shares is empty for a constant embedding (and absent in older records); the
    // annotations are referenceLines'
    /** @type {PlotlyObject[]} */ (layout.annotations).push({
      xref: "paper",
      x: 0.5,
      yref: "paper",
      y: 0.5,
      text: shown.some((s) => s.record && Array.isArray(rep(s.record, which).variance_shares))
        ? "no variance left: complete collapse"
        : "no variance shares recorded",
      showarrow: false,
      font: { size: 12, color: COLLAPSED },
    });
  }
  return { data, layout };
}

/** Alignment–uniformity plane (Wang & Isola 2020) with each run's trajectory over epochs.
 * @param {Series[]} series @param {Which} which @returns {Figure} */
function alignUniformFigure(series, which) {
  /** @type {PlotlyObject[]} */
  const data = series.map((run, i) => {
    const points = run.records.filter(
      (r) => rep(r, which).alignment !== undefined && rep(r, which).alignment !== null,
    );
    return {
      type: "scatter",
      mode: "lines+markers",
      name: series.length > 1 ? plotlyText(run.name) : "trajectory",
      x: points.map((r) => rep(r, which).uniformity),
      y: points.map((r) => rep(r, which).alignment),
      text: points.map((r) => `epoch ${r.epoch}`),
      hovertemplate: "%{text}<br>uniformity %{x:.3f}<br>alignment %{y:.3f}<extra></extra>",
      line: { color: series.length > 1 ? run.color : "#9ca3af", width: 1.5 },
      marker: {
        size: points.map((_, k) => (k === points.length - 1 ? 12 : 7)),
        color: series.length > 1 ? run.color : points.map((r) => r.epoch),
        colorscale: "Viridis",
        showscale: series.length === 1 && i === 0 && points.length > 1,
        colorbar: { title: { text: "epoch" }, thickness: 10 },
        line: { color: "#111827", width: 0.5 },
      },
    };
  });
  data.push({
    type: "scatter",
    mode: "markers+text",
    name: "complete collapse (0, 0)",
    x: [0],
    y: [0],
    text: ["collapse"],
    textposition: "top left",
    textfont: { color: COLLAPSED, size: 10 },
    marker: { symbol: "x", size: 12, color: COLLAPSED },
    hoverinfo: "name",
  });
  const plane = declared("plane");
  const layout = baseLayout(
    plane.title,
    "uniformity  log E exp(−2‖f(x)−f(y)‖²)  (nats)",
    plane.yTitle,
  );
  layout.hovermode = "closest";
  layout.xaxis.rangemode = "normal";
  // from just under 0: the collapse mark at (0, 0) is drawn whole
  const ys = data.flatMap((t) => t.y).filter((v) => typeof v === "number");
  const top = Math.max(0.1, ...ys);
  layout.yaxis.range = [-0.08 * top, 1.08 * top];
  const { shapes, annotations } = referenceLines([]);
  shapes.push({
    type: "line",
    yref: "paper",
    y0: 0,
    y1: 1,
    xref: "x",
    x0: -4,
    x1: -4,
    line: { color: HEALTHY, width: 1.5, dash: "dash" },
  });
  annotations.push({
    yref: "paper",
    y: 1,
    yanchor: "top",
    xref: "x",
    x: -4,
    xanchor: "left",
    text: " uniform on the sphere ≈ −4",
    showarrow: false,
    font: { size: 10, color: HEALTHY },
  });
  layout.shapes = shapes;
  layout.annotations = annotations;
  const xs = data.flatMap((t) => t.x).filter((v) => typeof v === "number");
  layout.xaxis.range = [Math.min(-4.2, ...xs) - 0.1, Math.max(0.2, ...xs) + 0.1];
  return { data, layout };
}

/** Last-epoch spectra of several runs on one line plot (heatmaps cannot be overlaid).
 * @param {Series[]} series @param {Which} which @returns {Figure} */
function spectrumOverlayFigure(series, which) {
  const data = series.map((s) => {
    const last = [...s.records].reverse().find((r) => Array.isArray(rep(r, which).spectrum));
    // last has one (the find's)
    const spectrum = last ? /** @type {number[]} */ (rep(last, which).spectrum) : [];
    return {
      type: "scatter",
      mode: "lines",
      name: `${plotlyText(s.name)}${last ? ` · epoch ${last.epoch}` : ""}`,
      x: spectrum.map((_, i) => i + 1),
      y: spectrum,
      line: { color: s.color, width: 2 },
    };
  });
  const dim = commonContext(series).dim;
  const layout = baseLayout(
    "Singular-value spectrum at the last epoch",
    "singular value index (1 = largest)",
    "log σ",
  );
  layout.hovermode = "closest";
  layout.xaxis.rangemode = "normal";
  layout.legend.y = -0.22;
  if (dim) {
    layout.shapes = [
      {
        type: "line",
        yref: "paper",
        y0: 0,
        y1: 1,
        x0: dim,
        x1: dim,
        line: { color: HEALTHY, dash: "dash", width: 1.5 },
      },
    ];
    layout.annotations = [
      {
        x: dim,
        yref: "paper",
        y: 1,
        xanchor: "right",
        text: `healthy: flat up to d = ${dim} `,
        showarrow: false,
        font: { size: 10, color: HEALTHY },
      },
      {
        xref: "paper",
        x: 0.02,
        yref: "paper",
        y: 0.02,
        text: "collapse: sharp drop after the first few",
        showarrow: false,
        font: { size: 10, color: COLLAPSED },
        xanchor: "left",
      },
    ];
  }
  return { data, layout };
}

/** The line metrics that apply to these runs (cluster usage only for clustering methods).
 * @param {Pick<Series, "records">[]} series @param {Which} which */
export function visibleMetrics(series, which) {
  // the closure does not keep m.onlyIf narrowed
  return LINE_METRICS.filter(
    (m) => !m.onlyIf || series.some((s) => /** @type {OnlyIf} */ (m.onlyIf)(s.records, which)),
  );
}

/**
 * Every diagnostic figure of one run (series of length 1) or of several overlaid, in page
 * order, as [{id, figure}]: the run page, the compare page and the report all draw these.
 * @param {Series[]} series  [{name, color, records, ctx}] one entry per run (see chartContext)
 * @param {Which} which
 * @param {{epoch?: number | null}} [options]  epoch: the epoch the per-epoch pictures show (the
 *   slider's); null: each run's last
 * @returns {{id: string, figure: Figure}[]}
 */
export function diagnosticFigures(series, which, { epoch = null } = {}) {
  /** @type {Record<string, () => Figure>} */
  const special = {
    spectrum: () =>
      series.length === 1
        ? spectrumFigure(series[0].records, which, series[0].ctx)
        : spectrumOverlayFigure(series, which),
    shares: () => varianceSharesFigure(series, which, epoch),
    plane: () => alignUniformFigure(series, which),
  };
  const lines = new Map(visibleMetrics(series, which).map((metric) => [metric.id, metric]));
  return CHART_IDS.filter((id) => lines.has(id) || special[id]).map((id) => ({
    id,
    figure: lines.has(id)
      ? lineFigure(/** @type {LineMetric} */ (lines.get(id)), series, which)
      : special[id](),
  }));
}

/** What a line chart's metrics mean (their Metric.help) and the mechanism family whose panel
 * it belongs to (Chart.group), or null for a chart without help.
 * @param {string} id */
export function chartHelp(id) {
  const chart = LINE_METRICS.find((m) => m.id === id);
  return chart && chart.help.length ? { group: chart.group, lines: chart.help } : null;
}

/** Ids of the charts shown for these runs, in page order.
 * @param {Pick<Series, "records">[]} series @param {Which} which */
export function shownChartIds(series, which) {
  const lines = new Set(visibleMetrics(series, which).map((m) => m.id));
  return CHART_IDS.filter((id) => lines.has(id) || !LINE_METRICS.some((m) => m.id === id));
}

/** The projection payload (`{"epoch", "points": [[x, y]...], "labels"}`) as columns; a point's
 * position is its probe index.
 * @param {Api.ProjectionPoints} payload @returns {Frame} */
export function projectionFrame(payload) {
  return {
    epoch: payload.epoch,
    x: payload.points.map((p) => p[0]),
    y: payload.points.map((p) => p[1]),
    labels: payload.labels,
  };
}

/** Axis ranges covering the points with a 5 % margin.
 * @param {Frame} frame @returns {Range} */
export function projectionRange(frame) {
  /** @param {number[]} values */
  const extent = (values) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo > hi) return [-1, 1];
    const pad = (hi - lo) * 0.05 || 1;
    return [lo - pad, hi + pad];
  };
  return { x: extent(frame.x), y: extent(frame.y) };
}

/** The smallest ranges holding both (either may be null).
 * @template {Range | null} B
 * @param {Range | null} a @param {B} b @returns {Range | B} */
export function unionRange(a, b) {
  if (!a || !b) return a || b;
  /** @param {number[]} p @param {number[]} q */
  const span = (p, q) => [Math.min(p[0], q[0]), Math.max(p[1], q[1])];
  return { x: span(a.x, b.x), y: span(a.y, b.y) };
}

/**
 * Embedding picture (WebGL scatter) coloured by label, one trace per label so the legend names
 * classes. `range` is the run's (or the comparison's) fixed scale: never autoscaled per epoch,
 * so a collapsing run's cloud visibly shrinks (size = spread; shape = neighbourhoods).
 * @param {Frame} frame
 * @param {{title?: string, range?: Range | null}} [options]
 * @returns {Figure}
 */
export function umapFigure(frame, { title = "UMAP of the probe embeddings", range = null } = {}) {
  /** @type {Map<number, number[]>} label -> its points' indices */
  const byLabel = new Map();
  frame.labels.forEach((label, i) => {
    if (!byLabel.has(label)) byLabel.set(label, []);
    /** @type {number[]} */ (byLabel.get(label)).push(i); // set just above
  });
  const labels = [...byLabel.keys()].sort((a, b) => a - b);
  const data = labels.map((label) => {
    const members = /** @type {number[]} */ (byLabel.get(label)); // a key of byLabel
    return {
      type: "scattergl",
      mode: "markers",
      name: String(label),
      x: members.map((i) => frame.x[i]),
      y: members.map((i) => frame.y[i]),
      customdata: members,
      hovertemplate: `index %{customdata}<br>label ${label}<extra></extra>`,
      marker: { size: 5, opacity: 0.8, color: LABEL_COLORS[Number(label) % LABEL_COLORS.length] },
    };
  });
  // the title names the run (its user-given name on the compare page and in reports)
  const layout = baseLayout(
    plotlyText(title),
    "UMAP 1 (scaled by spread)",
    "UMAP 2 (scaled by spread)",
  );
  layout.hovermode = "closest";
  layout.legend = { title: { text: "label" }, itemsizing: "constant" };
  layout.xaxis.rangemode = "normal";
  // One unit is as long on both axes, so a round cloud is drawn round.
  layout.yaxis.scaleanchor = "x";
  layout.yaxis.scaleratio = 1;
  if (range) {
    layout.xaxis.range = range.x;
    layout.yaxis.range = range.y;
  }
  return { data, layout };
}

/** Render (or re-render in place) a figure into a div.
 * @param {HTMLElement} div @param {Figure} figure @returns {Promise<unknown>} */
export function draw(div, figure) {
  const Plotly = /** @type {PlotlyWindow} */ (window).Plotly;
  if (!Plotly) return Promise.resolve(); // the page draws everything once it arrives
  // the cloud keeps its square-ish card: its legend (the classes) sits beside it
  if (div.classList.contains("plot") && !div.classList.contains("umap-plot")) {
    div.style.minHeight = ""; // the stylesheet's height, then room for the legend's lines
    const lines = legendLines(figure);
    if (lines > 2) div.style.minHeight = `${div.clientHeight + LEGEND_LINE * (lines - 2)}px`;
  }
  return Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
}

/** The lines the legend under a chart takes: one per entry, two per line on a wide card
 * where the names are short. With a trace per run and metric (the compare page) they would
 * leave the chart's lines a sliver of a fixed-height card: draw gives the card room for them.
 * @param {Figure} figure */
function legendLines(figure) {
  const names = figure.data
    .filter((trace) => trace.showlegend !== false)
    .map((trace) => trace.name)
    .filter((name) => typeof name === "string" && name);
  const short = names.every((name) => String(name).length <= LEGEND_SHORT_NAME);
  return !phoneLayout() && short ? Math.ceil(names.length / 2) : names.length;
}

/** Append one record to a single-run line plot without redrawing the history.
 * Returns false when the plot's traces do not match (a trace just appeared): redraw then.
 * @param {LinePlotDiv} div @param {LineMetric} metric @param {Api.EpochRecord} record
 * @param {Which} which @param {ChartContext} ctx */
export function extend(div, metric, record, which, ctx) {
  const Plotly = /** @type {PlotlyWindow} */ (window).Plotly;
  if (!Plotly || !div.data || div.data.length !== metric.traces.length) return false;
  const ext = lineExtension(metric, record, which);
  // a trace's first value may bring its metric's levels: redraw then
  const drawn = /** @type {{y: unknown[]}[]} */ (div.data);
  if (ext.y.some(([v], i) => v !== null && drawn[i].y.every((old) => old === null))) return false;
  // a second axis levelled with the first (lineFigure) has a fixed top: past it, redraw
  const top = div.layout.yaxis2 && div.layout.yaxis2.range ? div.layout.yaxis2.range[1] : null;
  const y2 = metric.traces.map((t) => t.axis === "y2");
  if (top !== null && ext.y.some(([v], i) => y2[i] && v !== null && Number(v) > top)) return false;
  Plotly.extendTraces(
    div,
    { x: ext.x, y: ext.y },
    metric.traces.map((_, i) => i),
  );
  const maxEpoch = Math.max(ctx.epochs || 1, record.epoch);
  // The axis spans the planned epochs, so it only moves past them: relayout (a second redraw) then.
  if (div.layout.xaxis.range[1] !== maxEpoch + 0.3)
    Plotly.relayout(div, { "xaxis.range": [-0.3, maxEpoch + 0.3] });
  return true;
}

// ---------------------------------------------------------------- sweeps (collapse maps)

/** The largest final value of a metric in the sweep (the shade's top when it has no fixed one).
 * @param {Api.SweepDetail} sweep @param {string} name a field of `final` */
function sweepMax(sweep, name) {
  const values = sweep.cells
    .flatMap((c) =>
      c.runs.map((r) =>
        r.final ? nullable(/** @type {Record<string, number | null>} */ (r.final)[name]) : null,
      ),
    )
    .filter((v) => v !== null);
  return Math.max(1, ...values);
}

/** A cell's value of a metric: the mean over its seeds' last epochs (the API's).
 * @param {Api.SweepCell} cell @param {SweepMetric} metric */
export function cellMetric(cell, metric) {
  return nullable(metric.get(cell.final));
}

/** The text written in a map cell: the onset epoch (collapsed), "ok" (healthy), progress
 * while running.
 * @param {Api.SweepCell} cell */
function cellLabel(cell) {
  const parts = [];
  if (cell.verdict_kind && cell.verdict_kind !== "healthy" && cell.onset_epoch !== null)
    parts.push(`onset ${cell.onset_epoch}`);
  else if (cell.verdict_kind === "healthy") parts.push("healthy");
  if (cell.status === "running" || cell.status === "queued")
    parts.push(`${Math.round(100 * cell.progress)}%`);
  if (!cell.seeds_agree) parts.push("seeds disagree");
  return parts.join("<br>") || cell.status;
}

/** @param {Api.GridAxisOut} axis */
function axisLabels(axis) {
  return axis.values.map((v) => plotlyText(v));
}

/**
 * The collapse map: one heatmap cell per grid point, its hue the verdict its seeds reached
 * (green healthy, amber dimensional, red complete collapse, grey none yet), its shade the
 * chosen metric (light = low), the onset epoch and that value written in it. One-key sweeps
 * are one row.
 * Each cell's customdata is its index in sweep.cells (for clicks).
 * @param {Api.SweepDetail} sweep @param {SweepMetric} metric @returns {Figure}
 */
export function sweepMapFigure(sweep, metric) {
  const [first, second] = sweep.axes;
  const rows = second ? first.values.length : 1;
  const cols = second ? second.values.length : first.values.length;
  const z = /** @type {number[][]} */ ([]),
    text = /** @type {string[][]} */ ([]),
    hover = /** @type {string[][]} */ ([]),
    index = /** @type {number[][]} */ ([]);
  const max = metric.max(sweep) || 1;
  // one hue band per kind: none yet, then the verdicts from healthy to the worst
  // the catalogue's kinds are Api.Verdict's (verdict.js)
  const kinds = /** @type {(keyof typeof VERDICT_COLORS)[]} */ ([PENDING, ...verdictKinds()]);
  for (let row = 0; row < rows; row += 1) {
    z.push([]);
    text.push([]);
    hover.push([]);
    index.push([]);
    for (let col = 0; col < cols; col += 1) {
      const at = second ? row * cols + col : col;
      const cell = sweep.cells[at];
      const kind = cell.verdict_kind || PENDING;
      const value = cellMetric(cell, metric);
      // hue band of the kind, shade within it: 0.15 (lightest) .. 0.95 of the band
      const shade = value === null ? 0.5 : 0.15 + 0.8 * Math.min(1, Math.max(0, value / max));
      z[row].push(kinds.indexOf(kind) + shade);
      // the shade's value is written too: shades of different hues cannot be compared
      text[row].push([cellLabel(cell), value === null ? "" : fmtNumber(value)].join("<br>"));
      index[row].push(at);
      const point = Object.entries(cell.point)
        .map(([k, v]) => `${plotlyText(k)} = ${plotlyText(v)}`)
        .join(", ");
      const seeds = cell.runs.map(
        (r) =>
          `seed ${r.seed}: ${r.status}, ${verdictLabel(r.verdict_kind)}` +
          (r.onset_epoch !== null ? ` from epoch ${r.onset_epoch}` : "") +
          (r.stopped_early ? " (stopped early)" : ""),
      );
      hover[row].push(
        [
          `<b>${point}</b>`,
          `${verdictLabel(cell.verdict_kind)}${cell.seeds_agree ? "" : " (seeds disagree)"}`,
          ...SWEEP_METRICS.map((m) => `${m.label}: ${fmtNumber(cellMetric(cell, m))}`),
          ...seeds,
        ].join("<br>"),
      );
    }
  }
  /** @type {[number, string][]} */
  const colorscale = [];
  kinds.forEach((kind, i) => {
    colorscale.push([i / kinds.length, VERDICT_TINTS[kind]]);
    // a scale must end at 1
    const end = i === kinds.length - 1 ? 1 : (i + 1) / kinds.length - 1e-6;
    colorscale.push([end, VERDICT_COLORS[kind]]);
  });
  const data = [
    {
      type: "heatmap",
      x: second ? axisLabels(second) : axisLabels(first),
      y: second ? axisLabels(first) : [""],
      z,
      zmin: 0,
      zmax: kinds.length,
      colorscale,
      showscale: false,
      text,
      texttemplate: "%{text}",
      textfont: { size: 12 },
      hovertext: hover,
      hoverinfo: "text",
      customdata: index,
      xgap: 3,
      ygap: 3,
    },
  ];
  const layout = baseLayout(
    `Collapse map (hue: verdict; shade and number: ${metric.label}, darker = higher)`,
    plotlyText(second ? second.key : first.key),
    plotlyText(second ? first.key : ""),
  );
  layout.xaxis = { ...layout.xaxis, type: "category", rangemode: undefined };
  layout.yaxis = { ...layout.yaxis, type: "category" };
  layout.hovermode = "closest";
  layout.plot_bgcolor = "rgba(0,0,0,0)";
  layout.height = Math.max(220, 90 + 70 * rows);
  return { data, layout };
}

/** @param {number | null | undefined} value */
function fmtNumber(value) {
  return value === null || value === undefined ? "–" : Number(value.toPrecision(3)).toString();
}

/** One-key sweeps: the chosen final diagnostic against the swept value, one line per seed,
 * each marker coloured by that run's verdict.
 * @param {Api.SweepDetail} sweep @param {SweepMetric} metric @returns {Figure} */
export function sweepLineFigure(sweep, metric) {
  const axis = sweep.axes[0];
  const key = plotlyText(axis.key);
  const numeric = axis.values.every((v) => typeof v === "number");
  const seeds = [...new Set(sweep.cells.flatMap((c) => c.runs.map((r) => r.seed)))].sort(
    (a, b) => a - b,
  );
  const data = seeds.map((seed, i) => {
    const runs = sweep.cells.map((cell) => cell.runs.find((r) => r.seed === seed) || null);
    return {
      type: "scatter",
      mode: "lines+markers",
      name: `seed ${seed}`,
      x: numeric ? axis.values : axisLabels(axis),
      y: runs.map((r) => (r && r.final ? nullable(metric.get(r.final)) : null)),
      line: { color: RUN_COLORS[i % RUN_COLORS.length], width: 2 },
      marker: {
        size: 10,
        color: runs.map((r) => VERDICT_COLORS[(r && r.verdict_kind) || PENDING]),
        line: { width: 1, color: "#fff" },
      },
      text: runs.map((r) => verdictLabel(r && r.verdict_kind)),
      hovertemplate: `${key} = %{x}<br>%{y:.3g} (%{text})<extra>seed ${seed}</extra>`,
      connectgaps: false,
    };
  });
  const layout = baseLayout(`${metric.label} against ${key}`, key, metric.label);
  layout.hovermode = "closest";
  const numbers = /** @type {number[]} */ (axis.values); // read only where numeric
  if (!numeric) layout.xaxis.type = "category";
  else if (numbers.length > 2 && numbers.every((v) => v > 0)) {
    const [lo, hi] = [Math.min(...numbers), Math.max(...numbers)];
    if (hi / lo > 50) layout.xaxis.type = "log";
  }
  return { data, layout };
}
