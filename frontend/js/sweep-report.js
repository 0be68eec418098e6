// @ts-check
// The offline HTML report of a sweep (GET /api/sweeps/{id}/report.html): the map, the line
// plot of a one-key sweep and the cells table, drawn by the pages' own chart builder from the
// data the API inlines (backend/report_page.py), so it opens without network.

import {
  SWEEP_METRICS,
  draw,
  sweepLineFigure,
  sweepMapFigure,
  useMetricCatalogue,
} from "./plots.js";
import { cellsTable, sweepSummary, sweepTitle } from "./sweep-view.js";
import { el } from "./ui.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** `data`: {title, sweep, metrics} with the sweep as GET /api/sweeps/{id} returns it and the
 * metric catalogue of GET /api/metrics.
 * @param {{title: string, sweep: Api.SweepDetail, metrics: Api.MetricCatalogue}} data */
export function renderSweepReport(data) {
  useMetricCatalogue(data.metrics);
  const sweep = data.sweep;
  // one map per sweep metric (a report has no menu to switch the shade), the default's first,
  // which the line plot draws
  const maps = SWEEP_METRICS.map((metric, i) =>
    el("div", { id: i ? `sweep-map-${metric.id}` : "sweep-map", class: "plot" }),
  );
  const line = sweep.axes.length === 1 ? el("div", { id: "sweep-line", class: "plot" }) : null;
  const parts = [
    el("h1", {}, sweepTitle(sweep)),
    el("p", { class: "muted" }, sweepSummary(sweep), ` Sweep ${sweep.id}.`),
    ...maps.map((map) => el("div", { class: "card" }, map)),
    line ? el("div", { class: "card" }, line) : null,
    el("div", { class: "table-scroll" }, cellsTable(sweep, null)),
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Base configuration"),
      el("pre", { class: "wrap" }, JSON.stringify(sweep.base, null, 2)),
    ),
  ];
  // a null child would read "null"; #report is the page's (backend/report_page.py)
  const root = /** @type {HTMLElement} */ (document.getElementById("report"));
  root.replaceChildren(...parts.filter((part) => part !== null));
  maps.forEach((map, i) => draw(map, sweepMapFigure(sweep, SWEEP_METRICS[i])));
  if (line) draw(line, sweepLineFigure(sweep, SWEEP_METRICS[0]));
}
