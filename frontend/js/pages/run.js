// @ts-check
// Run page (`/runs/{id}`, or `/s/{token}` read-only): verdict banner, progress, and the live
// diagnostics. Everything arrives once through the run's event stream (history first, then
// live); plots grow with Plotly.extendTraces, and a re-render uses only data already here.

import { SHARE_MISSING, api, isMissing, isReadOnly, runLinks, shareToken } from "../api.js";
import {
  FINISHED,
  configRows,
  embeddingDescription,
  isActive,
  isExternal,
  normaliseCatalogue,
  placementRows,
  runReason,
  runSetup,
  runTitle,
  totalEpochs,
} from "../model.js";
import {
  chartContext,
  chartHelp,
  diagnosticFigures,
  draw,
  extend,
  plotlyReady,
  shownChartIds,
  useMetricCatalogue,
  varianceSharesFigure,
  visibleMetrics,
} from "../plots.js";
import { shareBar } from "../share.js";
import { subscribe } from "../sse.js";
import {
  chartHelpBlock,
  el,
  keyValueTable,
  loaded,
  plotlyLoaded,
  queryState,
  renderHeader,
  reportWriteError,
  offeredRepresentation,
  representationPicker,
  showState,
  timeAgo,
  toast,
} from "../ui.js";
import { UmapView, EpochSlider } from "../umap.js";
import { causeBlock, findingsList, verdictHeadline, verdictKind } from "../verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** @import {Catalogue} from "../model.js" */
/** A div the plots are drawn into (plots.js extend's: Plotly keeps the figure on it).
 * @typedef {Parameters<typeof extend>[0]} PlotDiv */
/** A `status` event's data (backend/events.py): the new status, why, the verdict; the rest of
 * the run is read again.
 * @typedef {{status: Api.RunDetail["status"], error?: string | null, reason?: string | null,
 *   verdict: Api.RunDetail["verdict"]}} StatusEvent */
/** A `projection` event's data: the epoch whose projection is stored, and where.
 * @typedef {{epoch: number, count: number, url: string}} ProjectionEvent */

const root = /** @type {HTMLElement} */ (document.getElementById("run")); // run.html's

/** The page's state: main sets the run's id, the run and the catalogue before anything is
 * drawn, renderSkeleton the picture and its slider.
 * @type {{runId: string, run: Api.RunDetail | null, catalogue: Catalogue | null,
 *   records: Api.EpochRecord[], which: "projector" | "backbone", drawn: Set<string>,
 *   cardIds: string, queue: Api.EpochRecord[], flushScheduled: boolean,
 *   stream: {close: () => void} | null, umap: UmapView | null, slider: EpochSlider | null,
 *   epoch: number | null}} */
const state = {
  runId: "",
  run: null,
  catalogue: null,
  records: [], // epoch records, sorted by epoch, each once
  which: queryState.get("rep", "projector") === "backbone" ? "backbone" : "projector",
  drawn: new Set(), // plot ids drawn at least once with the current representation
  cardIds: "", // the line metrics that have a card, joined
  queue: [], // records received but not yet plotted
  flushScheduled: false,
  stream: null,
  umap: null,
  slider: null,
  epoch: null, // the slider's epoch: the per-epoch pictures (cloud, variance shares) show it
};

/** The run on the page: main loads it before anything is drawn. */
function loadedRun() {
  return loaded(state.run, "the run");
}

/** The run as the chart builder takes it (one series). */
function series() {
  return [
    {
      name: "run",
      records: state.records,
      ctx: chartContext(loadedRun(), state.records, state.which, state.catalogue),
    },
  ];
}

// ---------------------------------------------------------------- layout

function renderSkeleton() {
  const run = loadedRun();
  const readOnly = isReadOnly();
  const links = runLinks(state.runId);
  root.replaceChildren(
    el(
      "div",
      { class: "page-head" },
      el(
        "div",
        {},
        el("h1", { id: "run-title" }, runTitle(run, state.catalogue)),
        el("div", { class: "muted small", id: "run-subtitle" }),
        run.sweep_id && !readOnly
          ? el(
              "a",
              {
                class: "small",
                id: "sweep-link",
                href: `/sweeps/${encodeURIComponent(run.sweep_id)}`,
              },
              "part of a sweep: its map",
            )
          : null,
      ),
      el(
        "div",
        { class: "page-actions" },
        readOnly
          ? null
          : el(
              "button",
              { type: "button", id: "cancel-button", class: "danger", onclick: cancelRun },
              "Cancel run",
            ),
        readOnly || isExternal(run)
          ? null
          : el(
              "a",
              {
                class: "button secondary",
                id: "relaunch",
                href: `/launch?from=${encodeURIComponent(state.runId)}`,
              },
              "Launch again with changes",
            ),
      ),
    ),
    el("section", {
      id: "labels",
      class: "run-labels-bar",
      "aria-label": "project, tags and note",
    }),
    el("div", { id: "progress", class: "progress-box" }),
    el("div", { id: "failure", class: "failure", role: "alert", hidden: true }),
    el("section", {
      id: "verdict-banner",
      class: "verdict-banner verdict-pending",
      "aria-live": "polite",
    }),
    shareBar({
      runIds: [state.runId],
      what: "run",
      links: [
        { label: "Report (HTML)", href: links.report },
        { label: "Epochs CSV", href: links.csv, download: true },
        { label: "Epochs JSON", href: links.json, download: true },
      ],
    }),
    representationPicker(
      state.which,
      switchRepresentation,
      embeddingDescription(loadedRun(), state.catalogue),
    ),
    el("div", { id: "plots", class: "plot-grid" }),
    el(
      "section",
      { id: "umap-section", class: "card umap-card", "aria-labelledby": "umap-title" },
      el(
        "h2",
        { id: "umap-title" },
        "Embedding space (UMAP of the projector output, coloured by label)",
      ),
      el(
        "p",
        { class: "muted small scale-note" },
        "size = spread; shape = neighbourhoods. One scale for the whole run: " +
          "a collapsing run's cloud shrinks as you play the epochs.",
      ),
    ),
    el(
      "details",
      { id: "config", class: "card" },
      el("summary", {}, "Configuration"),
      el("div", { id: "config-body" }),
    ),
    el(
      "details",
      // an external run's host and script are its Configuration's source
      { id: "placement", class: "card", open: true, hidden: isExternal(run) },
      el("summary", {}, "Where it ran"),
      el(
        "div",
        { id: "placement-body" },
        el("p", { class: "muted" }, "Shown after the first epoch."),
      ),
    ),
  );
  renderPlotCards();
  const umapSection = /** @type {HTMLElement} */ (document.getElementById("umap-section"));
  // state.umap is made next, before the slider has an epoch to call these with
  state.slider = new EpochSlider(umapSection, {
    initialEpoch: queryState.get("epoch") === null ? null : Number(queryState.get("epoch")),
    onChange: (epoch) => {
      queryState.set({ epoch });
      state.epoch = epoch;
      /** @type {UmapView} */ (state.umap).show(epoch);
      drawShares();
    },
    beforePlay: () => /** @type {UmapView} */ (state.umap).ready(),
  });
  // an external run's loop sends the probe's embeddings, never its images
  state.umap = new UmapView(umapSection, state.runId, {
    probePanel: !isExternal(run),
    run: () => state.run,
  });
  renderRun();
  renderConfig();
  window.setInterval(renderSubtitle, 30_000);
}

function shownMetrics() {
  return visibleMetrics([{ records: state.records }], state.which);
}

function renderPlotCards() {
  const grid = /** @type {HTMLElement} */ (document.getElementById("plots")); // renderSkeleton's
  const focused = queryState.get("metric");
  const metricIds = shownMetrics().map((m) => m.id);
  state.cardIds = metricIds.join();
  const ids = shownChartIds([{ records: state.records }], state.which);
  const order =
    focused && ids.includes(focused) ? [focused, ...ids.filter((id) => id !== focused)] : ids;
  grid.replaceChildren(
    ...order.map((id) =>
      el(
        "div",
        { class: `card plot-card${id === focused ? " focused" : ""}`, id: `card-${id}` },
        el(
          "button",
          {
            type: "button",
            class: "link-button focus-toggle",
            "aria-label": id === focused ? `shrink the ${id} plot` : `enlarge the ${id} plot`,
            onclick: () => focusMetric(id === focused ? null : id),
          },
          id === focused ? "shrink" : "enlarge",
        ),
        el("div", { class: "plot", id: `plot-${id}`, "data-metric": id }),
        chartHelpBlock(chartHelp(id)),
      ),
    ),
  );
  state.drawn.clear();
}

/** @param {string | null} id the chart to enlarge; null: none */
function focusMetric(id) {
  queryState.set({ metric: id });
  renderPlotCards();
  redrawAll();
  if (id)
    /** @type {HTMLElement} */ (document.getElementById(`card-${id}`)).scrollIntoView({
      behavior: "smooth",
      block: "start",
    });
}

/** @param {"projector" | "backbone"} which */
function switchRepresentation(which) {
  state.which = which;
  queryState.set({ rep: which === "projector" ? null : which });
  renderPlotCards();
  redrawAll();
}

// ---------------------------------------------------------------- plots

function figures() {
  return diagnosticFigures(series(), state.which, { epoch: state.epoch });
}

/** The variance-shares bars follow the slider, as the cloud does. */
function drawShares() {
  const div = document.getElementById("plot-shares");
  if (div) draw(div, varianceSharesFigure(series(), state.which, state.epoch));
}

function redrawAll() {
  for (const { id, figure } of figures()) {
    const div = document.getElementById(`plot-${id}`);
    if (!div) continue;
    draw(div, figure);
    state.drawn.add(id);
  }
}

function scheduleFlush() {
  if (state.flushScheduled) return;
  state.flushScheduled = true;
  requestAnimationFrame(flush);
}

/** Plot the queued records: extend each trace by one point, or redraw after a burst. */
function flush() {
  state.flushScheduled = false;
  const batch = state.queue.splice(0);
  if (!batch.length) return;
  state.which = offeredRepresentation(state.which, state.records);
  if (
    shownMetrics()
      .map((m) => m.id)
      .join() !== state.cardIds
  )
    renderPlotCards();
  const appendOnly =
    batch.length === 1 &&
    state.drawn.size > 0 &&
    batch[0] === state.records[state.records.length - 1];
  const context = chartContext(loadedRun(), state.records, state.which, state.catalogue);
  // every shown metric has its card and plot (renderPlotCards), as every figure has below
  const extended =
    appendOnly &&
    shownMetrics().every((metric) =>
      extend(
        /** @type {PlotDiv} */ (document.getElementById(`plot-${metric.id}`)),
        metric,
        batch[0],
        state.which,
        context,
      ),
    );
  if (extended) {
    // The line plots grew by one point each; the spectrum, the shares and the plane are
    // redrawn whole.
    const lines = new Set(state.cardIds.split(","));
    for (const { id, figure } of figures()) {
      if (!lines.has(id))
        draw(/** @type {HTMLElement} */ (document.getElementById(`plot-${id}`)), figure);
    }
  } else {
    redrawAll();
  }
  renderVerdict();
  renderProgress();
  renderPlacement();
}

/** An `epoch` event: its data is the epoch record. A record the page holds comes again when
 * its verdict was revised (an earlier epoch arrived late): the new one replaces it.
 * @param {Api.EpochRecord | null | undefined} record */
function addRecord(record) {
  if (!record || record.epoch === undefined) return;
  const held = state.records.findIndex((r) => r.epoch === record.epoch);
  if (held >= 0) {
    if (JSON.stringify(state.records[held].verdict) !== JSON.stringify(record.verdict)) {
      state.records[held] = record;
      renderVerdict();
    }
    return;
  }
  const last = state.records[state.records.length - 1];
  state.records.push(record);
  if (last && record.epoch < last.epoch) state.records.sort((a, b) => a.epoch - b.epoch);
  state.queue.push(record);
  scheduleFlush();
}

// ---------------------------------------------------------------- run state

/** Project, tags (links to the runs list filtered by them) and note; an editor with the token.
 * @param {boolean} [editing] */
function renderLabels(editing = false) {
  const run = loadedRun();
  const box = /** @type {HTMLElement} */ (document.getElementById("labels")); // renderSkeleton's
  /** @param {string} key @param {string} value @param {string} text @param {string} cls */
  const filterLink = (key, value, text, cls) =>
    el("a", { href: `/?${new URLSearchParams({ [key]: value })}`, class: `chip ${cls}` }, text);
  if (!editing) {
    const tags = (run.tags || []).map((tag) => filterLink("tag", tag, `#${tag}`, "tag-chip"));
    // replaceChildren writes null as the text "null": the absent parts are filtered out
    box.replaceChildren(
      .../** @type {HTMLElement[]} */ (
        [
          run.project ? filterLink("project", run.project, run.project, "project-chip") : null,
          ...tags,
          run.note ? el("p", { class: "run-note-full", id: "run-note" }, run.note) : null,
          isReadOnly()
            ? null
            : el(
                "button",
                {
                  type: "button",
                  class: "link-button small",
                  id: "edit-labels",
                  onclick: () => renderLabels(true),
                },
                run.project || run.tags?.length || run.note
                  ? "edit labels"
                  : "add a project, tags or a note",
              ),
        ].filter(Boolean)
      ),
    );
    return;
  }
  const project = el("input", {
    id: "labels-project",
    value: run.project || "",
    placeholder: "project",
  });
  const tags = el("input", {
    id: "labels-tags",
    value: (run.tags || []).join(", "),
    placeholder: "tag, tag...",
  });
  const note = el(
    "textarea",
    { id: "labels-note", rows: 3, placeholder: "a note about this run" },
    run.note || "",
  );
  /** @param {Event} event */
  const save = async (event) => {
    event.preventDefault();
    /** @type {Api.LabelsEdit} */
    const edit = {
      tags: tags.value
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
      note: note.value,
      ...(project.value.trim() ? { project: project.value.trim() } : { clear_project: true }),
    };
    try {
      state.run = await api.editLabels(state.runId, edit);
      renderLabels();
      toast("Labels saved.");
    } catch (error) {
      reportWriteError(error, "Saving the labels");
    }
  };
  box.replaceChildren(
    el(
      "form",
      { class: "labels-form", onsubmit: save },
      el("label", { for: "labels-project" }, "Project"),
      project,
      el("label", { for: "labels-tags" }, "Tags"),
      tags,
      el("label", { for: "labels-note" }, "Note"),
      note,
      el(
        "div",
        {},
        el("button", { type: "submit", id: "save-labels" }, "Save"),
        " ",
        el(
          "button",
          { type: "button", class: "secondary", onclick: () => renderLabels() },
          "Cancel",
        ),
      ),
    ),
  );
}

/** Id, setup and age ("created 3 min ago"): redrawn every half minute, so a page left
 * open does not say "just now" for good. */
function renderSubtitle() {
  const subtitle = document.getElementById("run-subtitle");
  const run = state.run;
  if (!subtitle || !run) return;
  const age = timeAgo(run.created_at);
  subtitle.textContent = `run ${state.runId} · ${runSetup(run)} · created ${age}`;
}

/** The run's title, status, failure, labels, progress and verdict (renderSkeleton's parts). */
function renderRun() {
  const run = loadedRun();
  /** @type {HTMLElement} */ (document.getElementById("run-title")).textContent = runTitle(
    run,
    state.catalogue,
  );
  document.title = `${runTitle(run, state.catalogue)} · Collapse Lab`;
  renderSubtitle();
  const cancel = document.getElementById("cancel-button");
  if (cancel) cancel.hidden = !isActive(run); // an external run's too: its job may be gone
  const failure = /** @type {HTMLElement} */ (document.getElementById("failure"));
  const reason = runReason(run);
  failure.hidden = !(run.status === "failed" || (run.status === "cancelled" && reason));
  failure.replaceChildren(
    el("strong", {}, run.status === "failed" ? "This run failed: " : "Cancelled: "),
    reason || "no reason was recorded.",
  );
  if (!document.querySelector("#labels form")) renderLabels(); // never under an open editor
  renderProgress();
  renderVerdict();
}

/** @param {Api.Progress | null} [live] a `progress` event's data */
function renderProgress(live = null) {
  const box = document.getElementById("progress");
  if (!box) return;
  const run = loadedRun();
  const total = totalEpochs(run) || 0;
  const done = state.records.length
    ? state.records[state.records.length - 1].epoch
    : (run.last_epoch ?? 0);
  /** @type {Partial<Api.Progress>} */
  const progress = live || run.progress || {};
  const step = progress.step ?? null;
  const steps = progress.steps ?? null;
  const within =
    step !== null && steps ? Math.min(1, step / steps) : run.status === "succeeded" ? 1 : 0;
  const status = el("span", { class: `status status-${run.status}`, id: "run-status" }, run.status);
  // an external run may not say how many epochs it will log, nor have logged one yet; a run
  // that ended before its first epoch never measured one (not "epoch 0": epoch 0 is measured)
  const logged = state.records.length > 0 || run.last_epoch != null;
  const where = logged
    ? total
      ? ` epoch ${done} of ${total}`
      : ` epoch ${done}`
    : !FINISHED.has(run.status)
      ? " no epoch yet"
      : run.status === "succeeded"
        ? " with no epoch measured"
        : " before any epoch";
  const parts = [status, el("span", {}, where)];
  if (progress.images_per_s)
    parts.push(el("span", { class: "muted" }, ` · ${Math.round(progress.images_per_s)} images/s`));
  const overall = total
    ? Math.min(100, Math.round(((run.status === "succeeded" ? total : done) / total) * 100))
    : 0;
  box.replaceChildren(
    el("div", { class: "progress-line" }, parts),
    el(
      "label",
      { class: "progress-label" },
      "Run",
      el("progress", { id: "run-progress", max: 100, value: overall }),
    ),
  );
  if (isActive(run))
    box.append(
      el(
        "label",
        { class: "progress-label" },
        `Current epoch${step !== null && steps ? ` (step ${step}/${steps})` : ""}`,
        el("progress", { id: "epoch-progress", max: 100, value: Math.round(within * 100) }),
      ),
    );
}

function renderVerdict() {
  const banner = document.getElementById("verdict-banner");
  if (!banner) return;
  const run = loadedRun();
  const last = state.records[state.records.length - 1];
  const stored = run.verdict && run.verdict.kind ? run.verdict : null;
  // the run's verdict is its last epoch's while it runs: the records that came since the
  // page read the run are newer than its copy
  const final = FINISHED.has(run.status) ? stored : null;
  const verdict = final || (last && last.verdict) || stored;
  const kind = verdictKind(verdict);
  banner.className = `verdict-banner verdict-${kind}`;
  banner.dataset.kind = kind;
  const provisional = !final && verdict && !FINISHED.has(run.status);
  // an external run whose training loop stopped itself (stop on collapse): say when and why
  const finish = (run.external || {}).finish;
  const clientStop = finish && finish.stopped_at_epoch != null ? finish : null;
  // replaceChildren writes null as the text "null": the optional parts are filtered out
  banner.replaceChildren(
    .../** @type {HTMLElement[]} */ (
      [
        el(
          "div",
          { class: "verdict-head" },
          el(
            "span",
            { class: "verdict-title", id: "verdict-title" },
            provisional
              ? `so far: ${verdictHeadline(verdict)}`
              : verdictHeadline(verdict, FINISHED.has(run.status)),
          ),
        ),
        el(
          "p",
          { class: "verdict-reason", id: "verdict-reason" },
          verdict && verdict.reason
            ? verdict.reason
            : run.status === "queued"
              ? `Queued: ${run.waiting?.detail || "waiting for a worker"}.`
              : FINISHED.has(run.status)
                ? `The run ${ended(run)} before an epoch was measured: there is nothing to judge.`
                : "The verdict appears after the first epoch is measured.",
        ),
        causeBlock(verdict && verdict.cause),
        final && final.stopped_early
          ? el(
              "p",
              { class: "verdict-reason", id: "stopped-early" },
              `Stopped early: ${final.stopped_early.replace(/^stopped early /, "")}.`,
            )
          : null,
        clientStop
          ? el(
              "p",
              { class: "verdict-reason", id: "client-stopped" },
              `The client stopped the training after epoch ${clientStop.stopped_at_epoch}` +
                (clientStop.stop_reason ? `: ${clientStop.stop_reason}` : "") +
                ".",
            )
          : null,
        undelivered(finish),
        findingsList(verdict),
      ].filter(Boolean)
    ),
  );
}

/** The epochs an external run's client logged but the run lacks, one line (client/PROTOCOL.md,
 * the finish body), or null when it lacks none.
 * @param {Record<string, any> | null | undefined} finish */
function undelivered(finish) {
  const dropped = (finish && finish.epochs_dropped) || [];
  const skipped = (finish && finish.epochs_skipped) || [];
  if (!dropped.length && !skipped.length) return null;
  const parts = [
    dropped.length
      ? `not delivered by the client (its buffer was full, or the server refused them): ` +
        `epochs ${dropped.join(", ")}`
      : "",
    skipped.length ? `not sent, as they held NaN or infinity: epochs ${skipped.join(", ")}` : "",
  ];
  return el(
    "p",
    { class: "verdict-reason", id: "epochs-missing" },
    `Logged but missing here, ${parts.filter(Boolean).join("; ")}.`,
  );
}

function renderConfig() {
  // renderSkeleton's, as placement-body is
  /** @type {HTMLElement} */ (document.getElementById("config-body")).replaceChildren(
    keyValueTable(configRows(loadedRun())),
  );
}

function renderPlacement() {
  const rows = placementRows(state.records);
  if (rows.length)
    /** @type {HTMLElement} */ (document.getElementById("placement-body")).replaceChildren(
      keyValueTable(rows, { id: "placement-table" }),
    );
}

async function refreshRun() {
  try {
    state.run = await api.getRun(state.runId);
    renderRun();
  } catch (error) {
    toast(`Could not refresh the run: ${error instanceof Error ? error.message : error}`, "error");
  }
}

async function cancelRun() {
  // its own button's (on the page whenever it can be clicked)
  const button = /** @type {HTMLButtonElement} */ (document.getElementById("cancel-button"));
  button.disabled = true;
  try {
    const run = await api.cancel(state.runId);
    toast(
      isExternal(run)
        ? "Cancel requested: the run takes no more uploads and ends within seconds."
        : "Cancel requested: the worker stops within a few seconds.",
    );
    await refreshRun();
  } catch (error) {
    reportWriteError(error, "Cancel");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- live stream

/** A `status` event: `{"status", "error", "reason", "verdict", ...}` (reason: why, e.g.
 * "cancelled before it started"); the run is then read again for the rest.
 * @param {StatusEvent} data */
function onStatus(data) {
  const run = loadedRun();
  state.run = {
    ...run,
    status: data.status,
    verdict: data.verdict,
    error: data.error || data.reason || run.error,
  };
  renderRun();
  refreshRun();
}

/** A `projection` event points at a stored frame: `{"epoch", "count", "url"}`.
 * @param {ProjectionEvent} data */
function onProjection(data) {
  // a run without epoch records may still hold projections (nothingMeasured hid them)
  /** @type {HTMLElement} */ (document.getElementById("umap-section")).hidden = false;
  // renderSkeleton made both before connect
  /** @type {UmapView} */ (state.umap).add(data.epoch);
  /** @type {EpochSlider} */ (state.slider).add(data.epoch);
}

function connect() {
  // The stream opens while Plotly.js is still loading; what needs it waits for it, in order.
  /** @template T @param {(data: T) => void} handler @returns {(data: T) => Promise<void>} */
  const afterPlotly = (handler) => (data) => plotlyReady.then(() => handler(data));
  state.stream = subscribe(`/api/runs/${encodeURIComponent(state.runId)}/events`, {
    epoch: afterPlotly(addRecord), // the event's data is the epoch record
    status: onStatus,
    /** @param {Api.Progress} data */
    progress: (data) => {
      const run = loadedRun();
      state.run = {
        ...run,
        progress: data,
        status: run.status === "queued" ? "running" : run.status,
      };
      renderProgress(data);
    },
    projection: afterPlotly(onProjection),
    lost: (closed) => {
      // The server ends the stream of a finished run: do not reconnect forever.
      if (FINISHED.has(loadedRun().status) && state.stream && !closed) state.stream.close();
    },
  });
}

/** How a finished run ended, in words: "failed", "was cancelled", "ended".
 * @param {Api.RunDetail} run */
function ended(run) {
  return run.status === "cancelled"
    ? "was cancelled"
    : run.status === "failed"
      ? "failed"
      : "ended";
}

/** A run that ended before its first epoch was measured has nothing to draw: one line in
 * place of the empty charts, the projection and the placement, which would promise data. */
function nothingMeasured() {
  for (const id of ["rep-picker", "plots", "umap-section", "placement"])
    /** @type {HTMLElement} */ (document.getElementById(id)).hidden = true;
  /** @type {HTMLElement} */ (document.getElementById("plots")).after(
    el(
      "p",
      { id: "nothing-measured", class: "card muted" },
      `No epoch was measured before the run ${ended(loadedRun())}: there are no ` +
        "diagnostics to draw.",
    ),
  );
}

async function resolveRunId() {
  const token = shareToken();
  if (token) {
    const share = await api.share(token);
    const ids = share.runs || [];
    return ids[0];
  }
  const match = window.location.pathname.match(/^\/runs\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : queryState.get("id");
}

async function main() {
  renderHeader(null);
  showState(root, "loading", "Loading the run...");
  try {
    const id = await resolveRunId();
    if (!id) throw new Error("no run id in this address");
    state.runId = id;
    const [run, catalogue, metrics] = await Promise.all([
      api.getRun(id),
      api.methods().catch(() => null),
      api.metrics(),
    ]);
    useMetricCatalogue(metrics);
    state.run = run;
    state.catalogue = catalogue ? normaliseCatalogue(catalogue) : null;
  } catch (error) {
    const missing = isMissing(error);
    showState(
      root,
      "error",
      missing
        ? shareToken()
          ? SHARE_MISSING
          : "This run does not exist (it may have been deleted)."
        : `Could not load the run: ${error instanceof Error ? error.message : error}`,
    );
    return;
  }
  renderSkeleton();
  if (FINISHED.has(state.run.status) && state.run.last_epoch === null) nothingMeasured();
  connect();
  const container = /** @type {HTMLElement} */ (document.getElementById("plots"));
  if (!(await plotlyLoaded(plotlyReady, container, "the plots"))) return;
  redrawAll(); // empty axes with their reference levels until the history arrives
}

main();
