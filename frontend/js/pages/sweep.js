// Sweep page (`/sweeps/{id}`, or `/s/{token}` read-only): the collapse map of a sweep, one
// cell per grid point coloured by the verdict its seeds reached and shaded by a chosen final
// diagnostic, the onset epoch written in it; a table of the cells with links to every run;
// for a one-key sweep a line plot of the diagnostic against the swept value, one line per
// seed. The cells fill in live: any status, epoch or progress event of one of the sweep's runs
// (from the run-list stream) re-reads the sweep, at most once a second.

import { api, isReadOnly, shareToken, sweepLinks } from "../api.js";
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
import { el, queryState, renderHeader, reportWriteError, showState, toast } from "../ui.js";

const REFRESH_MS = 1000;
const root = document.getElementById("sweep");

const state = {
  id: null,
  sweep: null,
  runIds: new Set(),
  shade: null, // the sweep metric shading the map (set once the metric catalogue is here)
  line: null,
  refreshTimer: null,
  lastRefresh: 0,
  stream: null,
  clickBound: false,
};

/** The sweep metric of that id; the default (SWEEP_METRICS[0]) for none or an unknown one. */
function metricById(id) {
  return SWEEP_METRICS.find((m) => m.id === id) || SWEEP_METRICS[0];
}

function metricSelect(id, chosen, onchange) {
  return el(
    "select",
    { id, onchange: (event) => onchange(metricById(event.target.value)) },
    SWEEP_METRICS.map((m) => el("option", { value: m.id, selected: m.id === chosen.id }, m.label)),
  );
}

function renderSkeleton() {
  const sweep = state.sweep;
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
      metricSelect("shade-select", state.shade, (metric) => {
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
    oneKey
      ? el(
          "div",
          { class: "card" },
          el(
            "div",
            { class: "view-controls" },
            el("label", { for: "line-select" }, "Plot "),
            metricSelect("line-select", state.line, (metric) => {
              state.line = metric;
              queryState.set({ line: metric.id });
              drawPlots();
            }),
          ),
          el("div", { id: "sweep-line", class: "plot" }),
        )
      : null,
    el("h2", {}, "Cells"),
    el("div", { id: "sweep-cells" }),
  );
}

function renderSummary() {
  const sweep = state.sweep;
  document.getElementById("sweep-summary").textContent = sweepSummary(sweep);
  const cancel = document.getElementById("cancel-sweep");
  if (cancel) cancel.style.display = sweep.counts.queued || sweep.counts.running ? "" : "none";
}

function renderCells() {
  document.getElementById("sweep-cells").replaceChildren(cellsTable(state.sweep));
}

async function drawPlots() {
  if (!window.Plotly) return;
  const map = document.getElementById("sweep-map");
  await draw(map, sweepMapFigure(state.sweep, state.shade));
  if (!state.clickBound) {
    state.clickBound = true;
    map.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (!point) return;
      const cell = state.sweep.cells[point.customdata];
      if (cell && cell.runs.length) window.location.href = cell.runs[0].url;
    });
  }
  const line = document.getElementById("sweep-line");
  if (line) await draw(line, sweepLineFigure(state.sweep, state.line));
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
    toast(`Could not refresh the sweep: ${error.message}`, "error");
    return;
  }
  render();
  if (!(state.sweep.counts.queued || state.sweep.counts.running) && state.stream) {
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
    state.id = await resolveSweepId();
    if (!state.id) throw new Error("no sweep id in this address");
    const [sweep, metrics] = await Promise.all([api.getSweep(state.id), api.metrics()]);
    state.sweep = sweep;
    useMetricCatalogue(metrics);
    state.shade = metricById(queryState.get("shade"));
    state.line = metricById(queryState.get("line"));
  } catch (error) {
    const missing = error.status === 404;
    showState(
      root,
      "error",
      missing
        ? shareToken()
          ? "This share link is unknown or has been revoked."
          : "This sweep does not exist."
        : `Could not load the sweep: ${error.message}`,
    );
    return;
  }
  state.runIds = new Set(state.sweep.cells.flatMap((c) => c.runs.map((r) => r.id)));
  document.title = `${sweepTitle(state.sweep)} · Collapse Lab`;
  renderSkeleton();
  renderSummary();
  renderCells();
  if (state.sweep.counts.queued || state.sweep.counts.running) connect();
  try {
    await plotlyReady;
  } catch (error) {
    showState(
      document.getElementById("sweep-map"),
      "error",
      `${error.message}: the map cannot be drawn.`,
    );
    return;
  }
  drawPlots();
}

main();
