// @ts-check
// Runs page (`/`): every run with its verdict and effective-rank sparkline, filterable,
// kept live by the run-list event stream `/api/events` (no reload, no polling).

import { ApiError, api, listData } from "../api.js";
import {
  FINISHED,
  isExternal,
  keyOptions,
  normaliseCatalogue,
  rankHistory,
  runConfig,
  runMethod,
  runProgress,
  runTitle,
  totalEpochs,
} from "../model.js";
import { sparkline } from "../sparkline.js";
import { subscribe } from "../sse.js";
import { el, queryState, renderHeader, showState, timeAgo } from "../ui.js";
import {
  VERDICT_COLORS,
  guardLabel,
  useVerdicts,
  verdictBadge,
  verdictKind,
  verdictKinds,
  verdictLabel,
} from "../verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** @import {ListEvent, PageCatalogue, Run} from "../model.js" */

// The status filter's choices, one for each status of the API's (contract/records.py
// RUN_STATUSES): tsc fails when the contract gains or loses one.
/** @type {Record<Run["status"], string>} */
const STATUS_CHOICES = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
};
const PAGE_SIZE = 50;
const SPARKLINE_FETCH_LIMIT = 60;
// Every filter is a query parameter of the page and of GET /api/runs: a filtered list is a link.
const FILTER_KEYS = ["project", "tag", "method", "dataset", "status", "verdict", "cause", "q"];

/** @type {{catalogue: PageCatalogue, runs: Map<string, Run>, count: number,
 *   error: string | null, ranks: Map<string, number[]>, selected: Set<string>,
 *   refetching: Map<string, ReturnType<typeof setTimeout>>, loading: number,
 *   reloadTimer: ReturnType<typeof setTimeout> | null}} */
const state = {
  catalogue: { methods: [], presets: [], configSchema: null },
  runs: new Map(), // id -> run, the current page in server order
  count: 0, // runs matching the filters, all pages
  // why the latest list request failed (the server's refusal): shown in the table's place
  // until a request succeeds, not drawn over as an empty list
  error: null,
  ranks: new Map(), // id -> [effective rank per epoch]
  selected: new Set(),
  refetching: new Map(),
  loading: 0, // sequence number of the latest page request (older answers are dropped)
  reloadTimer: null,
};

// index.html's
const container = /** @type {HTMLElement} */ (document.getElementById("runs"));
const filtersForm = /** @type {HTMLFormElement} */ (document.getElementById("filters"));
const compareButton = /** @type {HTMLButtonElement} */ (
  document.getElementById("compare-selected")
);

/** The tags filtered by: every `tag` of the page's URL (`?tag=a&tag=b`, the API's form; a
 * value may also list several, comma-separated, as the Tags field is typed).
 * @returns {string[]} */
function tagFilter() {
  return queryState
    .getAll("tag")
    .flatMap((value) => value.split(","))
    .map((t) => t.trim())
    .filter(Boolean);
}

/** @returns {Record<string, string>} each filter's value, "" for none (the tags as typed) */
function filters() {
  return Object.fromEntries(
    FILTER_KEYS.map((key) => [
      key,
      key === "tag" ? tagFilter().join(", ") : queryState.get(key, ""),
    ]),
  );
}

function page() {
  return Math.max(0, Number.parseInt(queryState.get("page", "0"), 10) || 0);
}

function datasetNames() {
  // the run config's JSON Schema (pydantic's): the dataset field has its names as an enum
  const schema = /** @type {{properties?: Record<string, {enum?: string[]}>} | null} */ (
    state.catalogue.configSchema
  );
  const dataset = schema && schema.properties && schema.properties.dataset;
  return (dataset && dataset.enum) || [];
}

function renderFilters() {
  const current = filters();
  /** @param {string} name @param {string} label @param {[string, string][]} options */
  const select = (name, label, options) => {
    const id = `filter-${name}`;
    const control = el(
      "select",
      { id, name },
      el("option", { value: "" }, "all"),
      options.map(([value, text]) =>
        el("option", { value, selected: current[name] === value }, text),
      ),
      // a value of the URL that is none of the choices is shown as it is, not as "all" (the
      // server says why it refuses it); before the catalogue came, its choices are unknown
      current[name] && !options.some(([value]) => value === current[name])
        ? el(
            "option",
            { value: current[name], selected: true },
            options.length ? `${current[name]} (unknown)` : current[name],
          )
        : null,
    );
    return el("div", { class: "field inline" }, el("label", { for: id }, label), control);
  };
  /** @param {string} name @param {string} label @param {string} placeholder
   * @param {boolean} [grow] */
  const text = (name, label, placeholder, grow = false) =>
    el(
      "div",
      { class: `field inline${grow ? " grow" : ""}` },
      el("label", { for: `filter-${name}` }, label),
      el("input", {
        id: `filter-${name}`,
        name,
        type: "search",
        value: current[name],
        placeholder,
      }),
    );
  filtersForm.replaceChildren(
    text("project", "Project", "any"),
    text("tag", "Tags", "tag, tag..."),
    select(
      "method",
      "Method",
      state.catalogue.methods.map((m) => [m.name, m.title]),
    ),
    datasetNames().length
      ? select(
          "dataset",
          "Dataset",
          datasetNames().map((d) => [d, d]),
        )
      : text("dataset", "Dataset", "any"),
    select("status", "Status", Object.entries(STATUS_CHOICES)),
    select(
      "verdict",
      "Verdict",
      verdictKinds().map((k) => [k, verdictLabel(k)]),
    ),
    // the cause vocabulary (docs/causes.md) comes with the catalogue (GET /api/methods)
    select(
      "cause",
      "Cause",
      (state.catalogue.causeGuards || []).map((c) => [c, guardLabel(c)]),
    ),
    text("q", "Search", "name, note, id, preset...", true),
  );
  filtersForm.oninput = (event) => {
    // the form has inputs and selects only: every value is a string
    const data = /** @type {Record<string, string>} */ (
      Object.fromEntries(new FormData(filtersForm).entries())
    );
    // the tags as the API takes them, and as a shared link means them: `tag` repeated
    const tags = (data.tag || "")
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    queryState.set({ ...data, tag: tags, page: null });
    // typing waits for a pause; a choice in a list applies at once
    scheduleLoad(
      event && event.target && /** @type {HTMLInputElement} */ (event.target).type === "search"
        ? 250
        : 0,
    );
  };
  filtersForm.onsubmit = (event) => event.preventDefault();
}

/** The list's query: the filters (their "" is none: api.listRuns leaves it out) and the page.
 * @returns {Parameters<typeof api.listRuns>[0]} */
function listQuery() {
  // the filters' values are their lists' options or typed text: the server checks them
  return /** @type {Parameters<typeof api.listRuns>[0]} */ ({
    ...filters(),
    tag: tagFilter(),
    limit: PAGE_SIZE,
    offset: page() * PAGE_SIZE,
  });
}

/** @param {number} delay ms */
function scheduleLoad(delay) {
  clearTimeout(state.reloadTimer ?? undefined);
  state.reloadTimer = setTimeout(loadPage, delay);
}

async function loadPage() {
  const ticket = ++state.loading;
  /** @type {Api.RunList} */
  let listing;
  try {
    listing = await api.listRuns(listQuery());
  } catch (error) {
    if (ticket !== state.loading) return;
    // the server's refusal (a filter it does not know, a missing token) is its own words;
    // only a request that got no answer asks whether the API runs
    state.error =
      error instanceof ApiError
        ? `Could not load the runs: ${error.message} (HTTP ${error.status}).`
        : `Could not load the runs: ${error instanceof Error ? error.message : error}. ` +
          "Is the API running?";
    state.runs = new Map();
    state.count = 0;
    renderTable();
    return;
  }
  if (ticket !== state.loading) return; // a newer filter's answer is on its way
  state.error = null;
  state.runs = new Map(listData(listing).map((run) => [String(run.id), run]));
  state.count = listing.count ?? state.runs.size;
  renderTable();
  fetchRanks(sortedRuns());
}

function sortedRuns() {
  return [...state.runs.values()]; // newest first, as the server pages them
}

/** @param {Run} run */
function progressCell(run) {
  const progress = runProgress(run);
  const pct = Math.round(progress.fraction * 100);
  const label =
    run.status === "running" && progress.epochs
      ? `epoch ${progress.epoch}/${progress.epochs}`
      : run.status;
  return el(
    "div",
    { class: "status-cell" },
    el("span", { class: `status status-${run.status}` }, label),
    el("progress", { max: 100, value: pct, "aria-label": `progress ${pct}%` }),
  );
}

/** Project and tags as links that filter the list by them; the note's first line.
 * @param {Run} run */
function labels(run) {
  /** @param {string} key @param {string} value @param {string} text @param {string} cls */
  const filterLink = (key, value, text, cls) =>
    el(
      "a",
      {
        href: `/?${new URLSearchParams({ [key]: value })}`,
        class: cls,
        onclick: (event) => {
          event.preventDefault();
          queryState.set({ [key]: value, page: null });
          renderFilters();
          loadPage();
        },
      },
      text,
    );
  /** @type {HTMLElement[]} */
  const parts = [];
  if (run.project) parts.push(filterLink("project", run.project, run.project, "chip project-chip"));
  for (const tag of run.tags || []) parts.push(filterLink("tag", tag, `#${tag}`, "chip tag-chip"));
  const note = (run.note || "").split("\n")[0];
  if (note)
    parts.push(
      el(
        "span",
        { class: "muted small run-note", title: run.note },
        note.length > 80 ? `${note.slice(0, 80)}…` : note,
      ),
    );
  return parts.length ? el("div", { class: "run-labels" }, parts) : null;
}

/** @param {Run} run */
function row(run) {
  const id = String(run.id);
  const config = runConfig(run);
  const options = keyOptions(run, state.catalogue);
  const ranks = state.ranks.get(id) || rankHistory(run);
  const dim = config.proj_dim || null;
  const checkbox = el("input", {
    type: "checkbox",
    "aria-label": `select run ${id} for comparison`,
    checked: state.selected.has(id),
    onchange: (event) => {
      if (/** @type {HTMLInputElement} */ (event.target).checked) state.selected.add(id);
      else state.selected.delete(id);
      updateCompareButton();
    },
  });
  return el(
    "tr",
    { "data-run-id": id, class: `verdict-row-${verdictKind(run.verdict)}` },
    el("td", { class: "select" }, checkbox),
    el(
      "td",
      { "data-label": "Run" },
      el(
        "a",
        { href: `/runs/${encodeURIComponent(id)}`, class: "run-link" },
        runTitle(run, state.catalogue),
      ),
      el(
        "div",
        { class: "muted small" },
        `${id.slice(0, 8)} · ${runMethod(run)} · ${timeAgo(run.created_at)}`,
        run.sweep_id
          ? [
              " · ",
              el(
                "a",
                { href: `/sweeps/${encodeURIComponent(run.sweep_id)}`, class: "sweep-tag" },
                "sweep",
              ),
            ]
          : null,
      ),
      labels(run),
    ),
    el(
      "td",
      { "data-label": "Options" },
      options.length
        ? options.map((o) => el("code", { class: "chip" }, o))
        : isExternal(run)
          ? el("span", { class: "muted", title: "its own loop's: its config is on its page" }, "–")
          : el("span", { class: "muted" }, "defaults"),
    ),
    el(
      "td",
      { "data-label": "Dataset" },
      `${config.dataset || "?"} · ${totalEpochs(run) ?? "?"} ep`,
    ),
    el("td", { "data-label": "Status" }, progressCell(run)),
    el(
      "td",
      { "data-label": "Verdict", class: "verdict-cell" },
      verdictBadge(run.verdict, FINISHED.has(run.status)),
    ),
    el(
      "td",
      { "data-label": "Effective rank", class: "spark-cell" },
      sparkline(ranks, { max: dim, color: VERDICT_COLORS[verdictKind(run.verdict)] }),
    ),
  );
}

function pager() {
  const first = page() * PAGE_SIZE;
  /** @param {number} to the page */
  const go = (to) => () => {
    queryState.set({ page: to || null });
    loadPage();
  };
  return el(
    "nav",
    { class: "pager", "aria-label": "Pages of runs" },
    el("button", { type: "button", disabled: first === 0, onclick: go(page() - 1) }, "← Newer"),
    el(
      "span",
      { class: "muted", "data-testid": "run-count" },
      `${first + 1}–${first + state.runs.size} of ${state.count.toLocaleString("en")}`,
    ),
    el(
      "button",
      { type: "button", disabled: first + state.runs.size >= state.count, onclick: go(page() + 1) },
      "Older →",
    ),
  );
}

function renderTable() {
  if (state.error) {
    showState(container, "error", state.error);
    return;
  }
  const runs = sortedRuns();
  const filtered = FILTER_KEYS.some((key) => filters()[key]);
  if (!runs.length && !filtered && page() === 0) {
    container.replaceChildren(
      el(
        "div",
        { class: "state state-empty" },
        el("p", {}, "No runs yet."),
        el(
          "p",
          {},
          el("a", { href: "/launch" }, "Launch a run"),
          " or queue the whole collapse zoo from the launch page.",
        ),
      ),
    );
    return;
  }
  if (!runs.length && page() > 0 && state.count > 0) {
    // a page past the end (a link kept while runs were deleted): say so, with the way back
    const last = Math.ceil(state.count / PAGE_SIZE) - 1;
    container.replaceChildren(
      el(
        "div",
        { class: "state state-empty" },
        el("p", {}, `This page is past the last of the ${state.count.toLocaleString("en")} runs.`),
        el(
          "button",
          {
            type: "button",
            onclick: () => {
              queryState.set({ page: last || null });
              loadPage();
            },
          },
          "Go to the last page",
        ),
      ),
    );
    return;
  }
  if (!runs.length) {
    showState(container, "empty", "No run matches these filters.");
    return;
  }
  const table = el(
    "table",
    { class: "runs-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { class: "select" }, el("span", { class: "sr-only" }, "Select")),
        el("th", {}, "Run"),
        el("th", {}, "Key options"),
        el("th", {}, "Data"),
        el("th", {}, "Status"),
        el("th", {}, "Verdict"),
        el("th", {}, "Effective rank"),
      ),
    ),
    el("tbody", {}, runs.map(row)),
  );
  container.replaceChildren(table, pager());
}

/** @param {string} id */
function updateRow(id) {
  const run = state.runs.get(id);
  const existing = container.querySelector(`tr[data-run-id="${CSS.escape(id)}"]`);
  if (!run || !existing) {
    renderTable();
    return;
  }
  existing.replaceWith(row(run));
}

function updateCompareButton() {
  compareButton.disabled = state.selected.size < 1;
  compareButton.textContent = state.selected.size
    ? `Compare selected (${state.selected.size})`
    : "Compare selected";
}

compareButton.addEventListener("click", () => {
  window.location.href = `/compare?runs=${[...state.selected].map(encodeURIComponent).join(",")}`;
});

/** @param {Run[]} runs */
async function fetchRanks(runs) {
  const missing = runs
    .filter(
      (run) =>
        !state.ranks.has(String(run.id)) && !rankHistory(run).length && run.status !== "queued",
    )
    .slice(0, SPARKLINE_FETCH_LIMIT);
  const queue = [...missing];
  const worker = async () => {
    while (queue.length) {
      const run = /** @type {Run} */ (queue.shift()); // the queue is not empty
      try {
        const records = listData(await api.epochs(run.id));
        state.ranks.set(String(run.id), rankHistory({}, records));
        updateRow(String(run.id));
      } catch {
        // a sparkline is decoration: leave it empty
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

/** @param {string} id */
function refetchRun(id) {
  if (state.refetching.has(id)) return;
  state.refetching.set(
    id,
    setTimeout(async () => {
      state.refetching.delete(id);
      try {
        const run = await api.getRun(id);
        state.runs.set(id, run);
        updateRow(id);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          state.runs.delete(id);
          renderTable();
        }
      }
    }, 150),
  );
}

/** Run-list events are `{"run_id", "seq", "data"}` where data is the run stream's payload.
 * @param {"epoch" | "status" | "progress"} type @returns {(event: ListEvent) => void} */
function onEvent(type) {
  return (event) => {
    const id = event && event.run_id !== undefined ? String(event.run_id) : null;
    if (!id) return;
    const run = state.runs.get(id);
    const data = (event && event.data) || {};
    if (!run) {
      // a new run shows on the first page; changes of runs on other pages wait for a visit
      if (type === "status" && data.status === "queued" && page() === 0) scheduleLoad(500);
      return;
    }
    if (type === "epoch" && data.epoch !== undefined) {
      const ranks = state.ranks.get(id) || [...rankHistory(run)];
      if (
        data.projector &&
        typeof data.projector.effective_rank === "number" &&
        ranks.length <= data.epoch
      )
        ranks.push(data.projector.effective_rank);
      state.ranks.set(id, ranks);
      state.runs.set(id, {
        ...run,
        last_epoch: Math.max(run.last_epoch ?? -1, data.epoch),
        verdict: run.status === "running" && data.verdict ? data.verdict : run.verdict,
      });
      updateRow(id);
    } else if (type === "progress") {
      state.runs.set(id, {
        ...run,
        status: run.status === "queued" ? "running" : run.status,
        progress: /** @type {Api.Progress} */ (data), // a progress event's
      });
      updateRow(id);
    } else if (FILTER_KEYS.some((key) => filters()[key])) {
      scheduleLoad(500); // its status may take it in or out of the filtered list
    } else {
      refetchRun(id);
    }
  };
}

function connectLive() {
  // index.html's
  const liveState = /** @type {HTMLElement} */ (document.getElementById("live-state"));
  subscribe("/api/events", {
    open: () => {
      liveState.textContent = "live";
      liveState.className = "live-state on";
    },
    lost: () => {
      liveState.textContent = "live updates interrupted, reconnecting...";
      liveState.className = "live-state off";
    },
    epoch: onEvent("epoch"),
    status: onEvent("status"),
    progress: onEvent("progress"),
  });
}

async function main() {
  renderHeader("runs");
  showState(container, "loading", "Loading runs...");
  const catalogue = api.methods().catch(() => null); // titles and option defaults: not blocking
  try {
    useVerdicts(await api.metrics()); // the verdict kinds and their words (the filter, badges)
  } catch (error) {
    showState(
      container,
      "error",
      `Could not load the verdict kinds: ${error instanceof Error ? error.message : error}.`,
    );
    return;
  }
  renderFilters();
  await loadPage();
  connectLive();
  const loaded = await catalogue;
  if (loaded) {
    state.catalogue = normaliseCatalogue(loaded);
    renderFilters();
    renderTable();
  }
}

main();
