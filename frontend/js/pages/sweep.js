// @ts-check
// Sweep page (`/sweeps/{id}`, or `/s/{token}` read-only): the collapse map of a sweep, one
// cell per grid point coloured by the verdict its seeds reached and shaded by a chosen final
// diagnostic, the onset epoch written in it; a table of the cells with links to every run;
// for a one-key sweep a line plot of the diagnostic against the swept value, one line per
// seed. The cells fill in live: any status, epoch or progress event of one of the sweep's runs
// (from the run-list stream) re-reads the sweep, at most once a second.

import { SHARE_MISSING, api, isMissing, isReadOnly, shareToken, sweepLinks } from "../api.js";
import {
  SWEEP_METRICS,
  draw,
  plotlyReady,
  sweepLineFigure,
  sweepMapFigure,
  useMetricCatalogue,
} from "../plots.js";
import { shareBar } from "../share.js";
import { subscribe } from "../sse.js";
import { cellsTable, sweepSummary, sweepTitle } from "../sweep-view.js";
import {
  el,
  loaded,
  plotlyLoaded,
  queryState,
  renderHeader,
  reportWriteError,
  showState,
  toast,
} from "../ui.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A metric a sweep map can be shaded by (plots.js SWEEP_METRICS). @typedef
 * {(typeof SWEEP_METRICS)[number]} SweepMetric */
/** The map's div once Plotly has drawn it: Plotly's `on`, and a click's point's customdata
 * (the cell's index, sweepMapFigure's).
 * @typedef {HTMLElement & {on: (name: string,
 *   handler: (event: {points?: {customdata: number}[]}) => void) => void}} MapDiv */

const REFRESH_MS = 1000;
const root = /** @type {HTMLElement} */ (document.getElementById("sweep")); // sweep.html's

/** The page's state; main sets the shade and line metrics with the sweep, before drawing.
 * @type {{id: string, sweep: Api.SweepDetail | null, runIds: Set<string>,
 *   shade: SweepMetric | null, line: SweepMetric | null,
 *   refreshTimer: ReturnType<typeof setTimeout> | null, lastRefresh: number,
 *   stream: {close: () => void} | null, clickBound: boolean}} */
const state = {
  id: "",
  sweep: null,
  runIds: new Set(),
  shade: null, // the sweep metric shading the map (set once the metric catalogue is here)
  line: null,
  refreshTimer: null,
  lastRefresh: 0,
  stream: null,
  clickBound: false,
};

/** The sweep on the page: main loads it before anything is drawn. */
function loadedSweep() {
  return loaded(state.sweep, "the sweep");
}

/** The sweep metric of that id; the default (SWEEP_METRICS[0]) for none or an unknown one.
 * @param {string | null} id @returns {SweepMetric} */
function metricById(id) {
  return SWEEP_METRICS.find((m) => m.id === id) || SWEEP_METRICS[0];
}

/** @param {string} id @param {SweepMetric} chosen
 * @param {(metric: SweepMetric) => void} onchange */
function metricSelect(id, chosen, onchange) {
  /** @param {Event} event */
  const picked = (event) => /** @type {HTMLSelectElement} */ (event.target).value;
  return el(
    "select",
    { id, onchange: (event) => onchange(metricById(picked(event))) },
    SWEEP_METRICS.map((m) => el("option", { value: m.id, selected: m.id === chosen.id }, m.label)),
  );
}

function renderSkeleton() {
  const sweep = loadedSweep();
  const readOnly = isReadOnly();
  const links = sweepLinks(sweep.id);
  const oneKey = sweep.axes.length === 1;
  root.replaceChildren(
    el(
      "div",
      { class: "page-head" },
      el("h1", { id: "sweep-title" }, sweepTitle(sweep)),
      el(
        "div",
        { class: "page-actions" },
        readOnly
          ? null
          : el(
              "button",
              { type: "button", class: "danger", id: "cancel-sweep", onclick: cancelSweep },
              "Cancel the sweep",
            ),
      ),
    ),
    el("p", { class: "muted", id: "sweep-summary" }),
    shareBar({
      runIds: [...state.runIds],
      what: "sweep",
      links: [
        { label: "Report (HTML)", href: links.report },
        { label: "Cells CSV", href: links.csv, download: true },
        { label: "Cells JSON", href: links.json, download: true },
      ],
      create: () => api.shareSweep(sweep.id),
    }),
    el(
      "div",
      { class: "view-controls" },
      el("label", { for: "shade-select" }, "Shade by "),
      metricSelect("shade-select", /** @type {SweepMetric} */ (state.shade), (metric) => {
        state.shade = metric;
        queryState.set({ shade: metric.id });
        drawPlots();
      }),
    ),
    el(
      "div",
      { class: "card" },
      el("div", { id: "sweep-map", class: "plot", role: "img", "aria-label": "collapse map" }),
    ),
    // replaceChildren would write a null as the text "null"
    ...(oneKey
      ? [
          el(
            "div",
            { class: "card" },
            el(
              "div",
              { class: "view-controls" },
              el("label", { for: "line-select" }, "Plot "),
              metricSelect("line-select", /** @type {SweepMetric} */ (state.line), (metric) => {
                state.line = metric;
                queryState.set({ line: metric.id });
                drawPlots();
              }),
            ),
            el("div", { id: "sweep-line", class: "plot" }),
          ),
        ]
      : []),
    el("h2", {}, "Cells"),
    el("div", { id: "sweep-cells", class: "table-scroll" }),
  );
}

function renderSummary() {
  const sweep = loadedSweep();
  const summary = /** @type {HTMLElement} */ (document.getElementById("sweep-summary"));
  summary.textContent = sweepSummary(sweep);
  const cancel = document.getElementById("cancel-sweep");
  if (cancel) cancel.style.display = sweep.counts.queued || sweep.counts.running ? "" : "none";
}

function renderCells() {
  const cells = /** @type {HTMLElement} */ (document.getElementById("sweep-cells"));
  // a share link stays read-only: its runs are not linked to their pages (which write and ask
  // for the token), as on the compare page's share view
  cells.replaceChildren(cellsTable(loadedSweep(), isReadOnly() ? null : (run) => run.url));
}

async function drawPlots() {
  if (!(/** @type {Window & {Plotly?: unknown}} */ (window).Plotly)) return;
  const sweep = loadedSweep();
  const map = /** @type {MapDiv} */ (document.getElementById("sweep-map"));
  await draw(map, sweepMapFigure(sweep, /** @type {SweepMetric} */ (state.shade)));
  if (!state.clickBound && !isReadOnly()) {
    // a click opens the cell's first run: not from a share link (see renderCells)
    state.clickBound = true;
    map.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (!point) return;
      const cell = loadedSweep().cells[point.customdata];
      if (cell && cell.runs.length) window.location.href = cell.runs[0].url;
    });
  }
  const line = document.getElementById("sweep-line");
  if (line)
    await draw(line, sweepLineFigure(loadedSweep(), /** @type {SweepMetric} */ (state.line)));
}

function render() {
  renderSummary();
  renderCells();
  drawPlots();
}

async function refresh() {
  state.refreshTimer = null;
  state.lastRefresh = Date.now();
  try {
    const [sweep, metrics] = await Promise.all([api.getSweep(state.id), api.metrics()]);
    state.sweep = sweep;
    useMetricCatalogue(metrics);
    state.shade = metricById(queryState.get("shade"));
    state.line = metricById(queryState.get("line"));
  } catch (error) {
    toast(
      `Could not refresh the sweep: ${error instanceof Error ? error.message : error}`,
      "error",
    );
    return;
  }
  render();
  const counts = loadedSweep().counts;
  if (!(counts.queued || counts.running) && state.stream) {
    state.stream.close();
    state.stream = null;
  }
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  const wait = Math.max(0, REFRESH_MS - (Date.now() - state.lastRefresh));
  state.refreshTimer = setTimeout(refresh, wait);
}

function connect() {
  /** @param {{run_id: string} | null} payload the run-list stream's {run_id, seq, data} */
  const mine = (payload) => {
    if (payload && state.runIds.has(payload.run_id)) scheduleRefresh();
  };
  state.stream = subscribe("/api/events", {
    status: mine,
    epoch: mine,
    progress: mine,
    open: scheduleRefresh,
  });
}

async function cancelSweep() {
  if (!window.confirm("Cancel every run of this sweep that has not finished?")) return;
  try {
    state.sweep = await api.cancelSweep(state.id);
    toast("Sweep cancelled: queued runs end now, running ones within seconds.");
    render();
  } catch (error) {
    reportWriteError(error, "Cancelling the sweep");
  }
}

async function resolveSweepId() {
  const token = shareToken();
  if (token) return (await api.share(token)).sweep;
  const match = window.location.pathname.match(/^\/sweeps\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : queryState.get("id");
}

async function main() {
  renderHeader(null);
  showState(root, "loading", "Loading the sweep...");
  try {
    const id = await resolveSweepId();
    if (!id) throw new Error("no sweep id in this address");
    state.id = id;
    const [sweep, metrics] = await Promise.all([api.getSweep(id), api.metrics()]);
    state.sweep = sweep;
    useMetricCatalogue(metrics);
    state.shade = metricById(queryState.get("shade"));
    state.line = metricById(queryState.get("line"));
  } catch (error) {
    const missing = isMissing(error);
    showState(
      root,
      "error",
      missing
        ? shareToken()
          ? SHARE_MISSING
          : "This sweep does not exist."
        : `Could not load the sweep: ${error instanceof Error ? error.message : error}`,
    );
    return;
  }
  const sweep = loadedSweep();
  state.runIds = new Set(sweep.cells.flatMap((c) => c.runs.map((r) => r.id)));
  document.title = `${sweepTitle(sweep)} · Collapse Lab`;
  renderSkeleton();
  renderSummary();
  renderCells();
  if (sweep.counts.queued || sweep.counts.running) connect();
  const container = /** @type {HTMLElement} */ (document.getElementById("sweep-map"));
  if (!(await plotlyLoaded(plotlyReady, container, "the map"))) return;
  drawPlots();
}

main();
