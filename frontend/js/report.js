// @ts-check
// The offline HTML report of a run or a comparison, drawn by the same chart builder as the
// pages (plots.js) from the data the API inlines (backend/report_page.py inlines this module,
// what it imports, plotly.js and the stylesheet, so the report opens without network).

import { RUN_COLORS } from "./colours.js";
import {
  configRows,
  normaliseCatalogue,
  placementRows,
  runSetup,
  runTitle,
  totalEpochs,
} from "./model.js";
import {
  chartContext,
  chartHelp,
  diagnosticFigures,
  draw,
  projectionFrame,
  projectionRange,
  umapFigure,
  unionRange,
  useMetricCatalogue,
} from "./plots.js";
import { chartHelpBlock, el, keyValueTable } from "./ui.js";
import { causeBlock, findingsList, verdictHeadline, verdictKind } from "./verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A run of the report: its detail, its epoch records, its first and last epochs' projections.
 * @typedef {{run: Api.RunDetail, records: Api.EpochRecord[], projections: Api.ProjectionPoints[]}}
 *   ReportRun */

/** @type {{which: "projector" | "backbone", title: string}[]} */
const SPACES = [
  { which: "projector", title: "Projector output z" },
  { which: "backbone", title: "Backbone representation h" },
];

/** @param {Api.RunDetail} run @param {Api.EpochRecord[]} records
 * @param {ReturnType<typeof normaliseCatalogue>} catalogue */
function runBlock(run, records, catalogue) {
  const verdict = run.verdict && run.verdict.kind ? run.verdict : null;
  const kind = verdictKind(verdict);
  return el(
    "section",
    { class: "card report-run", "data-run-id": run.id },
    el("h2", {}, runTitle(run, catalogue), " ", el("span", { class: "muted small" }, run.id)),
    el(
      "div",
      { class: `verdict-banner verdict-${kind}`, "data-kind": kind },
      el(
        "div",
        { class: "verdict-head" },
        el("span", { class: "verdict-title" }, verdictHeadline(verdict)),
      ),
      el("p", { class: "verdict-reason" }, (verdict && verdict.reason) || run.error || ""),
      causeBlock(verdict && verdict.cause),
      findingsList(verdict),
    ),
    el(
      "p",
      { class: "muted small" },
      `status ${run.status}, ${run.last_epoch ?? 0} of ${totalEpochs(run)} epochs · ` +
        runSetup(run),
    ),
    el("details", {}, el("summary", {}, "Configuration"), keyValueTable(configRows(run))),
    records.length
      ? el("details", {}, el("summary", {}, "Where it ran"), keyValueTable(placementRows(records)))
      : null,
  );
}

/** @param {string} id @param {string} which */
function plotCard(id, which) {
  return el(
    "div",
    { class: "card plot-card" },
    el("div", { class: "plot", id: `plot-${which}-${id}`, "data-metric": id, "data-space": which }),
    chartHelpBlock(chartHelp(id)),
  );
}

/** Draw the report into the page. `data`: {title, runs: [{run, records, projections}],
 * catalogue, metrics} with projections [{"epoch", "points", "labels"}] (the run's first and
 * last), the catalogue of GET /api/methods and the metric catalogue of GET /api/metrics.
 * @param {{title: string, runs: ReportRun[], catalogue: Api.Catalogue,
 *   metrics: Api.MetricCatalogue}} data */
export function renderReport(data) {
  useMetricCatalogue(data.metrics);
  // the page's (backend/report_page.py)
  const root = /** @type {HTMLElement} */ (document.getElementById("report"));
  const runs = data.runs;
  const catalogue = normaliseCatalogue(data.catalogue);
  /** @param {Api.RunDetail} run */
  const runName = (run) => `${runTitle(run, catalogue)} (${run.id.slice(0, 6)})`;
  /** @type {(() => void)[]} */
  const drawing = [];
  const sections = SPACES.map(({ which, title }) => {
    const series = runs.map(({ run, records }, index) => ({
      name: runName(run),
      color: RUN_COLORS[index % RUN_COLORS.length],
      records,
      ctx: chartContext(run, records, which, catalogue),
    }));
    const figures = diagnosticFigures(series, which);
    const grid = el(
      "div",
      { class: "plot-grid" },
      figures.map(({ id }) => plotCard(id, which)),
    );
    drawing.push(() =>
      figures.forEach(({ id, figure }) =>
        // plotCard's, in the page by the time it is drawn
        draw(/** @type {HTMLElement} */ (document.getElementById(`plot-${which}-${id}`)), figure),
      ),
    );
    return el("section", {}, el("h2", {}, title), grid);
  });
  // Every picture on one scale: the first epoch beside the last shows how far the cloud shrank.
  const pictures = runs.flatMap(({ run, projections }) =>
    projections.map((payload) => ({ run, frame: projectionFrame(payload) })),
  );
  const range = pictures.reduce(
    (acc, { frame }) => unionRange(acc, projectionRange(frame)),
    /** @type {ReturnType<typeof projectionRange> | null} */ (null),
  );
  const cells = pictures.map(({ run, frame }) => {
    const plot = el("div", {
      class: "plot umap-plot",
      "data-run-id": run.id,
      "data-epoch": String(frame.epoch),
    });
    drawing.push(() =>
      draw(plot, umapFigure(frame, { title: `${runName(run)} · epoch ${frame.epoch}`, range })),
    );
    return el("div", { class: "umap-cell" }, plot);
  });
  root.replaceChildren(
    el("div", { class: "page-head" }, el("h1", {}, data.title)),
    ...runs.map(({ run, records }) => runBlock(run, records, catalogue)),
    ...sections,
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Embedding pictures: first and last epoch, on one scale"),
      el("p", { class: "muted small scale-note" }, "size = spread; shape = neighbourhoods."),
      cells.length
        ? el("div", { class: "umap-grid" }, cells)
        : el("p", { class: "muted" }, "No projection was stored."),
    ),
    el(
      "p",
      { class: "muted small" },
      `Collapse Lab report, ${runs.length} run${runs.length === 1 ? "" : "s"}, ` +
        `${runs.reduce((n, r) => n + r.records.length, 0)} epoch records; opens offline.`,
    ),
  );
  for (const paint of drawing) paint();
}
