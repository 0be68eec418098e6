// @ts-check
// Compare page (`/compare?runs=a,b,...`, or a shared comparison `/s/{token}`): the chosen runs
// overlaid on the same diagnostics, their UMAPs side by side at one epoch, and the collapse
// matrix (methods x ablations with verdicts). Without `runs`, it offers a picker and the matrix
// of every run.

import {
  ApiError,
  SHARE_MISSING,
  api,
  compareLinks,
  isMissing,
  isReadOnly,
  listData,
  shareToken,
} from "../api.js";
import { RUN_COLORS } from "../colours.js";
import {
  FINISHED,
  isExternal,
  keyOptions,
  normaliseCatalogue,
  runMethod,
  runPreset,
  runTitle,
} from "../model.js";
import {
  CHART_IDS,
  chartContext,
  chartHelp,
  diagnosticFigures,
  draw,
  plotlyReady,
  useMetricCatalogue,
  varianceSharesFigure,
} from "../plots.js";
import { shareBar } from "../share.js";
import { subscribe } from "../sse.js";
import {
  chartHelpBlock,
  el,
  plotlyLoaded,
  queryState,
  renderHeader,
  offeredRepresentation,
  representationPicker,
  showState,
  toast,
} from "../ui.js";
import { EpochSlider, ProjectionScale, UmapView } from "../umap.js";
import {
  PENDING,
  causeSentence,
  guardLabel,
  verdictBadge,
  verdictKind,
  verdictLabel,
} from "../verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** @import {ListEvent, PageCatalogue, Run} from "../model.js" */
/** @typedef {ReturnType<typeof diagnosticFigures>[number]["figure"]} Figure */

const MAX_UMAPS = 6;
const root = /** @type {HTMLElement} */ (document.getElementById("compare")); // compare.html's

/** @type {{catalogue: PageCatalogue, ids: string[], runs: Map<string, Run>,
 *   records: Map<string, Api.EpochRecord[]>, which: "projector" | "backbone",
 *   umaps: UmapView[], slider: EpochSlider | null, epoch: number | null,
 *   redrawScheduled: boolean}} */
const state = {
  catalogue: { methods: [], presets: [], configSchema: null },
  ids: [],
  runs: new Map(), // id -> run
  records: new Map(), // id -> [records]
  which: queryState.get("rep", "projector") === "backbone" ? "backbone" : "projector",
  umaps: [],
  slider: null,
  epoch: null, // the shared slider's epoch: the variance shares show it, as the pictures do
  redrawScheduled: false,
};

/** @param {string} id */
function colorOf(id) {
  return RUN_COLORS[state.ids.indexOf(id) % RUN_COLORS.length];
}

function seriesList() {
  return state.ids
    .filter((id) => state.runs.has(id))
    .map((id) => {
      const run = /** @type {Run} */ (state.runs.get(id)); // the filter's
      const records = state.records.get(id) || [];
      return {
        id,
        name: `${runTitle(run, state.catalogue)} (${id.slice(0, 6)})`,
        color: colorOf(id),
        records,
        ctx: chartContext(run, records, state.which, state.catalogue),
      };
    });
}

// ---------------------------------------------------------------- collapse matrix

/** Column label for a run inside its method's row: the ablation, or "standard".
 * @param {Run} run */
function ablationLabel(run) {
  if (isExternal(run)) return runTitle(run, state.catalogue); // a loop of its own: its name
  const preset = runPreset(run);
  const found = preset && state.catalogue.presets.find((p) => p.name === preset);
  if (found) {
    // Ablation presets say what they remove ("SimSiam without stop-gradient"); some of them
    // are expected to stay healthy (BYOL without EMA), so the expected verdict cannot tell.
    const at = found.title.toLowerCase().indexOf("without");
    return at > 0 ? found.title.slice(at) : "standard";
  }
  const options = keyOptions(run, state.catalogue);
  return options.length ? options.join(", ") : "standard";
}

/** @param {Run} run */
function expectedOf(run) {
  const preset = runPreset(run);
  const found = preset && state.catalogue.presets.find((p) => p.name === preset);
  return found ? found.expected : null;
}

/** @param {Run[]} runs
 * @param {boolean} [linkEach] every run of a cell gets a link (a comparison's few runs), or
 *   only the one shown, the others counted (the picker's latest 500) */
function collapseMatrix(runs, linkEach = true) {
  /** @type {Map<string, Map<string, Run[]>>} method -> ablation label -> its runs */
  const byMethod = new Map();
  const newestFirst = [...runs].sort((a, b) => String(b.created_at).localeCompare(a.created_at));
  for (const run of newestFirst) {
    const method = runMethod(run);
    if (!byMethod.has(method)) byMethod.set(method, new Map());
    const cells = /** @type {Map<string, Run[]>} */ (byMethod.get(method)); // set just above
    const label = ablationLabel(run);
    cells.set(label, [...(cells.get(label) || []), run]);
  }
  if (!byMethod.size) return el("p", { class: "muted" }, "No runs to tabulate yet.");
  /** @param {string} name */
  const methodTitle = (name) =>
    (state.catalogue.methods.find((m) => m.name === name) || { title: name }).title;
  /** @param {string} label @param {Run} run */
  const cell = (label, run) => {
    const kind = verdictKind(run.verdict);
    const expected = expectedOf(run);
    const agrees = expected && kind !== PENDING ? expected === kind : null;
    return el(
      "a",
      {
        class: `matrix-cell verdict-cell-${kind}`,
        href: isReadOnly() ? null : `/runs/${encodeURIComponent(run.id)}`,
        title:
          run.verdict && run.verdict.reason
            ? [run.verdict.reason, causeSentence(run.verdict.cause)].filter(Boolean).join("\n")
            : `${label}: ${verdictLabel(kind, FINISHED.has(run.status))}`,
      },
      el("span", { class: "matrix-label" }, label),
      verdictBadge(run.verdict, FINISHED.has(run.status)),
      run.verdict && run.verdict.cause
        ? el(
            "span",
            { class: "matrix-cause", "data-guard": run.verdict.cause.guard },
            `cause: ${guardLabel(run.verdict.cause.guard)}`,
          )
        : null,
      expected
        ? el(
            "span",
            { class: `matrix-expected ${agrees === false ? "mismatch" : ""}` },
            agrees === null
              ? `expected ${verdictLabel(expected)}`
              : agrees
                ? "✓ as expected"
                : `✗ expected ${verdictLabel(expected)}`,
          )
        : null,
      run.status !== "succeeded" ? el("span", { class: "muted small" }, run.status) : null,
    );
  };
  /** A configuration's runs: the newest that has a verdict or may still get one as its cell
   * (a run cancelled or failed before its first epoch does not hide a finished one behind "no
   * verdict"), and every other one (another seed or dataset, an older run, a run that ended
   * without a verdict) as a small link beside it, so a run that disagrees is never hidden.
   * @param {string} label @param {Run[]} cellRuns newest first */
  const group = (label, cellRuns) => {
    const shown = cellRuns.find((run) => run.verdict || !FINISHED.has(run.status)) || cellRuns[0];
    const others = cellRuns.filter((run) => run !== shown);
    if (!others.length) return cell(label, shown);
    if (!linkEach)
      return el(
        "div",
        { class: "matrix-group" },
        cell(label, shown),
        el("span", { class: "matrix-more muted small" }, `and ${others.length} more`),
      );
    return el(
      "div",
      { class: "matrix-group" },
      cell(label, shown),
      el(
        "span",
        { class: "matrix-more small" },
        `and ${others.length} more: `,
        others.map((run) => {
          const kind = verdictKind(run.verdict);
          return el(
            "a",
            {
              class: `matrix-more-run verdict-cell-${kind}`,
              href: isReadOnly() ? null : `/runs/${encodeURIComponent(run.id)}`,
              title: `${runTitle(run, state.catalogue)} · ${run.dataset} · seed ${run.seed ?? "–"}`,
            },
            verdictLabel(kind, FINISHED.has(run.status)),
          );
        }),
      ),
    );
  };
  const rows = [...byMethod.entries()].map(([method, cells]) => {
    // logged by collapse_lab.Monitor: its cells are its loops' names, "standard" included
    const loops = [...cells.values()].flat().some(isExternal);
    const standard = loops ? undefined : cells.get("standard");
    const ablations = [...cells.entries()].filter(([label]) => loops || label !== "standard");
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, loops ? "Own training loops" : methodTitle(method)),
      el("td", {}, standard ? group("standard", standard) : el("span", { class: "muted" }, "–")),
      el(
        "td",
        {},
        el(
          "div",
          { class: "matrix-ablations" },
          ablations.length
            ? ablations.map(([label, cellRuns]) => group(label, cellRuns))
            : el("span", { class: "muted" }, "–"),
        ),
      ),
    );
  });
  return el(
    "table",
    { class: "collapse-matrix" },
    el(
      "caption",
      {},
      "Collapse matrix: each method with its anti-collapse part in place (standard) " +
        "and switched off (ablations).",
    ),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col" }, "Method"),
        el("th", { scope: "col" }, "Standard"),
        el("th", { scope: "col" }, "Ablations"),
      ),
    ),
    el("tbody", {}, rows),
  );
}

// ---------------------------------------------------------------- picker (no runs chosen)

async function renderPicker() {
  showState(root, "loading", "Loading runs...");
  const runs = listData(await api.listRuns({ limit: 500 }));
  for (const run of runs) state.runs.set(String(run.id), run);
  if (!runs.length) {
    showState(
      root,
      "empty",
      "No runs to compare yet: launch some, or the collapse zoo, from the Launch page.",
    );
    return;
  }
  const form = el(
    "form",
    { class: "picker", "aria-label": "choose runs to compare" },
    el(
      "fieldset",
      {},
      el("legend", {}, "Choose runs to compare"),
      el(
        "div",
        { class: "picker-list" },
        runs
          .slice(0, 100)
          .map((run) =>
            el(
              "label",
              { class: "picker-item" },
              el("input", { type: "checkbox", name: "run", value: run.id }),
              " ",
              runTitle(run, state.catalogue),
              " ",
              el("span", { class: "muted small" }, `${String(run.id).slice(0, 6)} · ${run.status}`),
              " ",
              verdictBadge(run.verdict, FINISHED.has(run.status)),
            ),
          ),
      ),
    ),
    el("button", { type: "submit" }, "Compare"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [
      .../** @type {NodeListOf<HTMLInputElement>} */ (
        form.querySelectorAll("input[name=run]:checked")
      ),
    ].map((input) => input.value);
    if (!chosen.length) {
      toast("Choose at least one run.", "error");
      return;
    }
    window.location.href = `/compare?runs=${chosen.map(encodeURIComponent).join(",")}`;
  });
  root.replaceChildren(
    el("div", { class: "page-head" }, el("h1", {}, "Compare runs")),
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Collapse matrix (latest run of each configuration)"),
      collapseMatrix(runs, false),
    ),
    form,
  );
}

// ---------------------------------------------------------------- comparison

function renderLayout() {
  const readOnly = isReadOnly();
  // an id that names no run stays in the legend ("not found"), out of the links: the
  // exports and the share of the runs that exist would be a 404 with it
  const found = state.ids.filter((id) => state.runs.has(id));
  const missing = state.ids.length - found.length;
  const compareUrl = `/compare?runs=${found.map(encodeURIComponent).join(",")}`;
  const links = compareLinks(found);
  const title = `Compare ${found.length} run${found.length === 1 ? "" : "s"}`;
  root.replaceChildren(
    el(
      "div",
      { class: "page-head" },
      el("h1", {}, title),
      missing ? el("span", { class: "muted" }, ` (${missing} not found)`) : null,
    ),
    el("div", { id: "legend", class: "run-legend" }),
    // none found: nothing to export or share
    ...(found.length
      ? [
          shareBar({
            runIds: found,
            what: "comparison",
            links: [
              { label: "Report (HTML)", href: links.report },
              { label: "Epochs CSV", href: links.csv, download: true },
              { label: "Epochs JSON", href: links.json, download: true },
            ],
          }),
        ]
      : []),
    el(
      "p",
      { class: "muted small", hidden: readOnly },
      "This page's address: ",
      el("code", {}, compareUrl),
    ),
    el("section", { class: "card" }, el("h2", {}, "Collapse matrix"), el("div", { id: "matrix" })),
    representationPicker(state.which, (which) => {
      state.which = which;
      queryState.set({ rep: which === "projector" ? null : which });
      redraw();
    }),
    el("div", { id: "plots", class: "plot-grid" }),
    el(
      "section",
      { id: "umap-section", class: "card", "aria-labelledby": "umap-title" },
      el(
        "h2",
        { id: "umap-title" },
        "Embedding pictures side by side at the same epoch, on the same scale",
      ),
      el(
        "p",
        { class: "muted small scale-note" },
        "size = spread; shape = neighbourhoods. Every picture shares one pair of axes, " +
          "so a collapsed run's cloud is small beside a healthy one.",
      ),
      el("div", { id: "umap-slider" }),
      el("div", { id: "umap-grid", class: "umap-grid" }),
    ),
  );
  // the parts just drawn: plots, umap-slider, umap-grid, and a plot per chart
  const grid = /** @type {HTMLElement} */ (document.getElementById("plots"));
  grid.append(
    ...CHART_IDS.map((id) =>
      el(
        "div",
        { class: "card plot-card", id: `card-${id}` },
        el("div", { class: "plot", id: `plot-${id}`, "data-metric": id }),
        chartHelpBlock(chartHelp(id)),
      ),
    ),
  );
  state.slider = new EpochSlider(
    /** @type {HTMLElement} */ (document.getElementById("umap-slider")),
    {
      initialEpoch: queryState.get("epoch") === null ? null : Number(queryState.get("epoch")),
      label: "Epoch (all runs)",
      onChange: (epoch) => {
        queryState.set({ epoch });
        state.epoch = epoch;
        for (const view of state.umaps) view.show(epoch);
        draw(
          /** @type {HTMLElement} */ (document.getElementById("plot-shares")), // a chart's
          varianceSharesFigure(seriesList(), state.which, epoch),
        );
      },
      beforePlay: () => Promise.all(state.umaps.map((view) => view.ready())),
    },
  );
  const umapGrid = /** @type {HTMLElement} */ (document.getElementById("umap-grid"));
  const scale = new ProjectionScale(); // one pair of axes for every run's picture
  state.umaps = state.ids.slice(0, MAX_UMAPS).map((id) => {
    const run = state.runs.get(id);
    const cell = el("div", { class: "umap-cell" });
    umapGrid.append(cell);
    return new UmapView(cell, id, {
      title: run ? runTitle(run, state.catalogue) : id,
      scale,
      run: () => state.runs.get(id), // kept current by the status events (connectLive)
    });
  });
}

function renderLegend() {
  // renderLayout's, as the matrix's box is
  const legend = /** @type {HTMLElement} */ (document.getElementById("legend"));
  legend.replaceChildren(
    ...state.ids.map((id) => {
      const run = state.runs.get(id);
      if (!run) return el("span", { class: "legend-item muted" }, `${id}: not found`);
      return el(
        "span",
        { class: "legend-item" },
        el("span", { class: "swatch", style: `background:${colorOf(id)}` }),
        isReadOnly()
          ? runTitle(run, state.catalogue)
          : el("a", { href: `/runs/${encodeURIComponent(id)}` }, runTitle(run, state.catalogue)),
        " ",
        el("span", { class: "muted small" }, `${id.slice(0, 6)} · ${run.status}`),
        " ",
        verdictBadge(run.verdict, FINISHED.has(run.status)),
      );
    }),
  );
  /** @type {HTMLElement} */ (document.getElementById("matrix")).replaceChildren(
    collapseMatrix(
      /** @type {Run[]} */ (state.ids.map((id) => state.runs.get(id)).filter(Boolean)),
    ),
  );
}

function redraw() {
  state.redrawScheduled = false;
  state.which = offeredRepresentation(state.which, [...state.records.values()].flat());
  const figures = new Map(
    diagnosticFigures(seriesList(), state.which, { epoch: state.epoch }).map(({ id, figure }) => [
      id,
      figure,
    ]),
  );
  for (const id of CHART_IDS) {
    // renderLayout made a card and plot per chart
    const div = /** @type {HTMLElement} */ (document.getElementById(`plot-${id}`));
    /** @type {HTMLElement} */ (div.closest(".plot-card")).hidden = !figures.has(id);
    if (figures.has(id)) draw(div, /** @type {Figure} */ (figures.get(id)));
  }
}

/** Put every epoch that has a projection (in any shown run) on the shared slider. Each view
 * learns its own run's epochs before any goes on the slider: a view asks only for the epochs
 * its run has (the slider also shows the other runs' epochs).
 * @param {string[]} ids */
async function addProjectionEpochs(ids) {
  const views = /** @type {UmapView[]} */ (
    ids.map((id) => state.umaps.find((v) => v.runId === id)).filter(Boolean)
  );
  // a run whose list cannot be read just lacks its epochs on the slider; the plots are unaffected
  const lists = await Promise.all(
    views.map((view) =>
      api.projectionEpochs(view.runId).then(
        (payload) => payload.epochs,
        () => [],
      ),
    ),
  );
  views.forEach((view, index) => lists[index].forEach((epoch) => view.add(epoch)));
  const slider = /** @type {EpochSlider} */ (state.slider); // renderLayout made it
  for (const epoch of lists.flat()) slider.add(epoch);
}

function scheduleRedraw() {
  if (state.redrawScheduled) return;
  state.redrawScheduled = true;
  requestAnimationFrame(redraw);
}

/** Live updates from the run-list stream (`{"run_id", "seq", "data"}`): one connection for
 * any number of compared runs. */
function connectLive() {
  /** @param {"epoch" | "status"} type @returns {(event: ListEvent) => void} */
  const onEvent = (type) => (event) => {
    const id = event && event.run_id !== undefined ? String(event.run_id) : "";
    if (!state.ids.includes(id)) return;
    const data = event.data || {};
    if (type === "epoch" && data.epoch !== undefined) {
      const records = state.records.get(id) || [];
      if (!records.some((r) => r.epoch === data.epoch)) {
        records.push(/** @type {Api.EpochRecord} */ (data)); // an epoch event's data
        records.sort((a, b) => a.epoch - b.epoch);
        state.records.set(id, records);
        scheduleRedraw();
        setTimeout(() => addProjectionEpochs([id]), 5000); // projections follow their epoch
      }
    } else if (type === "status") {
      api.getRun(id).then((run) => {
        state.runs.set(id, run);
        renderLegend();
      });
    }
  };
  subscribe("/api/events", { epoch: onEvent("epoch"), status: onEvent("status") });
}

async function resolveIds() {
  const token = shareToken();
  if (token) {
    const share = await api.share(token);
    return share.runs || [];
  }
  return (queryState.get("runs", "") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

async function main() {
  renderHeader("compare");
  try {
    const [catalogue, metrics] = await Promise.all([
      api.methods().catch(() => null),
      api.metrics(),
    ]);
    if (catalogue) state.catalogue = normaliseCatalogue(catalogue);
    useMetricCatalogue(metrics);
    state.ids = [...new Set(await resolveIds())];
    if (!state.ids.length) {
      await renderPicker();
      return;
    }
    showState(root, "loading", `Loading ${state.ids.length} runs...`);
    await Promise.all(
      state.ids.map(async (id) => {
        try {
          state.runs.set(id, await api.getRun(id));
          state.records.set(id, listData(await api.epochs(id)));
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) throw error;
        }
      }),
    );
  } catch (error) {
    showState(
      root,
      "error",
      isMissing(error) // only the share is fetched unguarded: a run's 404 is skipped
        ? SHARE_MISSING
        : `Could not load the comparison: ${error instanceof Error ? error.message : error}`,
    );
    return;
  }
  renderLayout();
  renderLegend();
  const container = /** @type {HTMLElement} */ (document.getElementById("plots"));
  if (!(await plotlyLoaded(plotlyReady, container, "the plots"))) return;
  redraw();
  addProjectionEpochs(state.ids);
  connectLive();
}

main();
