// @ts-check
// What the sweep page and the sweep's offline report both show besides the charts: the
// one-line summary and the table of cells (grid values, verdict, onset, cause, final numbers,
// runs).

import { SWEEP_METRICS, cellMetric } from "./plots.js";
import { el, fmt } from "./ui.js";
import { PENDING, causeSentence, guardLabel, verdictBadge } from "./verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** Each seed's cause sentence, for the hover of a cell's cause.
 * @param {Api.SweepCell} cell */
function cellCauseTitle(cell) {
  return cell.runs
    .map((run) => (run.cause ? `seed ${run.seed}: ${causeSentence(run.cause)}` : ""))
    .filter(Boolean)
    .join("\n");
}

/** @param {Api.SweepDetail} sweep */
export function sweepTitle(sweep) {
  // a stored name of only whitespace (the API refuses new ones) names nothing
  if (sweep.name && sweep.name.trim()) return sweep.name;
  return `${sweep.preset || sweep.method}: ${sweep.axes.map((a) => a.key).join(" × ")}`;
}

/** @param {Api.SweepDetail} sweep */
export function sweepSummary(sweep) {
  const counts = Object.entries(sweep.counts)
    .filter(([, n]) => n)
    .map(([status, n]) => `${n} ${status}`);
  const axes = sweep.axes.map((a) => `${a.key} ∈ {${a.values.join(", ")}}`).join(" × ");
  return (
    `${axes}; seeds ${sweep.seeds.join(", ")}; ${sweep.runs_total} runs (${counts.join(", ")}), ` +
    `${Math.round(100 * sweep.progress)}% done; at most ${sweep.concurrency} at a time.`
  );
}

/** The cells as a table; `runHref(run)` links each run (null: no links, e.g. offline).
 * @param {Api.SweepDetail} sweep
 * @param {((run: Api.SweepRunOut) => string) | null} [runHref] */
export function cellsTable(sweep, runHref = (run) => run.url) {
  const keys = sweep.axes.map((a) => a.key);
  const rows = sweep.cells.map((cell) =>
    el(
      "tr",
      { class: `verdict-row-${cell.verdict_kind || PENDING}`, "data-cell": String(cell.index) },
      keys.map((key) => el("td", {}, String(cell.point[key]))),
      el(
        "td",
        { class: "cell-verdict" },
        verdictBadge(cell.verdict_kind),
        cell.seeds_agree ? null : el("span", { class: "chip" }, "seeds disagree"),
      ),
      el("td", {}, fmt(cell.onset_epoch)),
      el(
        "td",
        { class: "cell-cause", "data-guard": cell.cause || "", title: cellCauseTitle(cell) },
        cell.cause ? guardLabel(cell.cause) : "—",
      ),
      SWEEP_METRICS.map((metric) => el("td", {}, fmt(cellMetric(cell, metric)))),
      el(
        "td",
        { class: "cell-progress" },
        // the verdict has its column: this one says how far the cell's seeds are
        cell.status === "running" || cell.status === "queued"
          ? `${cell.status} · ${Math.round(100 * cell.progress)}%`
          : cell.status,
      ),
      el(
        "td",
        {},
        cell.runs.map((run) => {
          const text =
            `seed ${run.seed}: ${run.status}` + (run.stopped_early ? " (stopped early)" : "");
          const href = runHref ? runHref(run) : null;
          return el(
            href ? "a" : "span",
            { class: "run-link", href, title: run.stopped_early || run.error || "" },
            text,
          );
        }),
      ),
    ),
  );
  return el(
    "table",
    { class: "runs-table", id: "cells-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        keys.map((k) => el("th", {}, k)),
        ["verdict", "onset epoch", "cause"].map((h) => el("th", {}, h)),
        SWEEP_METRICS.map((m) => el("th", { title: m.label }, `final ${m.title}`)),
        ["progress", "runs"].map((h) => el("th", {}, h)),
      ),
    ),
    el("tbody", {}, rows),
  );
}
