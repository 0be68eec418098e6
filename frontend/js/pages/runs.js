// Runs page (`/`): every run with its verdict and effective-rank sparkline, filterable,
// kept live by the run-list event stream `/api/events` (no reload, no polling).

import { api, listData } from "../api.js";
import { keyOptions, normaliseCatalogue, rankHistory, runConfig, runMethod, runPreset, runProgress, runTitle, totalEpochs } from "../model.js";
import { sparkline } from "../sparkline.js";
import { subscribe } from "../sse.js";
import { el, queryState, renderHeader, showState, timeAgo } from "../ui.js";
import { VERDICT_COLORS, verdictBadge, verdictKind } from "../verdict.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const VERDICTS = [
  ["healthy", "healthy"],
  ["dimensional_collapse", "dimensional collapse"],
  ["complete_collapse", "complete collapse"],
  ["pending", "no verdict yet"],
];
const SPARKLINE_FETCH_LIMIT = 60;

const state = {
  catalogue: { methods: [], presets: [], configSchema: null },
  runs: new Map(), // id -> run
  ranks: new Map(), // id -> [effective rank per epoch]
  selected: new Set(),
  refetching: new Map(),
};

const container = document.getElementById("runs");
const filtersForm = document.getElementById("filters");
const compareButton = document.getElementById("compare-selected");

function filters() {
  return {
    method: queryState.get("method", ""),
    status: queryState.get("status", ""),
    verdict: queryState.get("verdict", ""),
    q: queryState.get("q", ""),
  };
}

function renderFilters() {
  const current = filters();
  const select = (name, label, options) => {
    const id = `filter-${name}`;
    const control = el(
      "select",
      { id, name },
      el("option", { value: "" }, "all"),
      options.map(([value, text]) => el("option", { value, selected: current[name] === value }, text)),
    );
    return el("div", { class: "field inline" }, el("label", { for: id }, label), control);
  };
  filtersForm.replaceChildren(
    select("method", "Method", state.catalogue.methods.map((m) => [m.name, m.title])),
    select("status", "Status", STATUSES.map((s) => [s, s])),
    select("verdict", "Verdict", VERDICTS),
    el(
      "div",
      { class: "field inline grow" },
      el("label", { for: "filter-q" }, "Search"),
      el("input", { id: "filter-q", name: "q", type: "search", value: current.q, placeholder: "preset, option, id..." }),
    ),
  );
  filtersForm.oninput = () => {
    const data = new FormData(filtersForm);
    queryState.set(Object.fromEntries(data.entries()));
    renderTable();
  };
  filtersForm.onsubmit = (event) => event.preventDefault();
}

function matches(run, f) {
  if (f.method && runMethod(run) !== f.method) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.verdict && verdictKind(run.verdict) !== f.verdict) return false;
  if (f.q) {
    const haystack = [run.id, runTitle(run, state.catalogue), runPreset(run), runMethod(run), JSON.stringify(runConfig(run).options || {}), runConfig(run).dataset]
      .join(" ")
      .toLowerCase();
    if (!haystack.includes(f.q.toLowerCase())) return false;
  }
  return true;
}

function sortedRuns() {
  const time = (run) => new Date(run.created_at).getTime() || 0;
  return [...state.runs.values()].sort((a, b) => time(b) - time(a) || String(b.id).localeCompare(String(a.id)));
}

function progressCell(run) {
  const progress = runProgress(run);
  const pct = Math.round(progress.fraction * 100);
  const label = run.status === "running" && progress.epochs ? `epoch ${progress.epoch}/${progress.epochs}` : run.status;
  return el(
    "div",
    { class: "status-cell" },
    el("span", { class: `status status-${run.status}` }, label),
    el("progress", { max: 100, value: pct, "aria-label": `progress ${pct}%` }),
  );
}

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
      if (event.target.checked) state.selected.add(id);
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
      el("a", { href: `/runs/${encodeURIComponent(id)}`, class: "run-link" }, runTitle(run, state.catalogue)),
      el("div", { class: "muted small" }, `${id.slice(0, 8)} · ${runMethod(run)} · ${timeAgo(run.created_at)}`, run.sweep_id ? [" · ", el("a", { href: `/sweeps/${encodeURIComponent(run.sweep_id)}`, class: "sweep-tag" }, "sweep")] : null),
    ),
    el("td", { "data-label": "Options" }, options.length ? options.map((o) => el("code", { class: "chip" }, o)) : el("span", { class: "muted" }, "defaults")),
    el("td", { "data-label": "Dataset" }, `${config.dataset || "?"} · ${totalEpochs(run) ?? "?"} ep`),
    el("td", { "data-label": "Status" }, progressCell(run)),
    el("td", { "data-label": "Verdict", class: "verdict-cell" }, verdictBadge(run.verdict)),
    el("td", { "data-label": "Effective rank", class: "spark-cell" }, sparkline(ranks, { max: dim, color: VERDICT_COLORS[verdictKind(run.verdict)] })),
  );
}

function renderTable() {
  const f = filters();
  const runs = sortedRuns().filter((run) => matches(run, f));
  if (!state.runs.size) {
    container.replaceChildren(
      el("div", { class: "state state-empty" }, el("p", {}, "No runs yet."), el("p", {}, el("a", { href: "/launch" }, "Launch a run"), " or queue the whole collapse zoo from the launch page.")),
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
      el("tr", {}, el("th", { class: "select" }, el("span", { class: "sr-only" }, "Select")), el("th", {}, "Run"), el("th", {}, "Key options"), el("th", {}, "Data"), el("th", {}, "Status"), el("th", {}, "Verdict"), el("th", {}, "Effective rank")),
    ),
    el("tbody", {}, runs.map(row)),
  );
  container.replaceChildren(table);
}

function updateRow(id) {
  const run = state.runs.get(id);
  const existing = container.querySelector(`tr[data-run-id="${CSS.escape(id)}"]`);
  if (!run || !existing || !matches(run, filters())) {
    renderTable();
    return;
  }
  existing.replaceWith(row(run));
}

function updateCompareButton() {
  compareButton.disabled = state.selected.size < 1;
  compareButton.textContent = state.selected.size ? `Compare selected (${state.selected.size})` : "Compare selected";
}

compareButton.addEventListener("click", () => {
  window.location.href = `/compare?runs=${[...state.selected].map(encodeURIComponent).join(",")}`;
});

async function fetchRanks(runs) {
  const missing = runs.filter((run) => !state.ranks.has(String(run.id)) && !rankHistory(run).length && run.status !== "queued").slice(0, SPARKLINE_FETCH_LIMIT);
  const queue = [...missing];
  const worker = async () => {
    while (queue.length) {
      const run = queue.shift();
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
        if (error.status === 404) {
          state.runs.delete(id);
          renderTable();
        }
      }
    }, 150),
  );
}

/** Run-list events are `{"run_id", "seq", "data"}` where data is the run stream's payload. */
function onEvent(type) {
  return (event) => {
    const id = event && event.run_id !== undefined ? String(event.run_id) : null;
    if (!id) return;
    const run = state.runs.get(id);
    const data = (event && event.data) || {};
    if (!run) {
      refetchRun(id);
      return;
    }
    if (type === "epoch" && data.epoch !== undefined) {
      const ranks = state.ranks.get(id) || [...rankHistory(run)];
      if (data.projector && typeof data.projector.effective_rank === "number" && ranks.length <= data.epoch) ranks.push(data.projector.effective_rank);
      state.ranks.set(id, ranks);
      state.runs.set(id, { ...run, last_epoch: Math.max(run.last_epoch ?? -1, data.epoch), verdict: run.status === "running" && data.verdict ? data.verdict : run.verdict });
      updateRow(id);
    } else if (type === "progress") {
      state.runs.set(id, { ...run, status: run.status === "queued" ? "running" : run.status, progress: data });
      updateRow(id);
    } else {
      refetchRun(id);
    }
  };
}

function connectLive() {
  const liveState = document.getElementById("live-state");
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
    for (const run of listData(await api.listRuns({ limit: 500 }))) state.runs.set(String(run.id), run);
  } catch (error) {
    showState(container, "error", `Could not load the runs: ${error.message}. Is the API running?`);
    renderFilters();
    return;
  }
  renderFilters();
  renderTable();
  connectLive();
  fetchRanks(sortedRuns());
  const loaded = await catalogue;
  if (loaded) {
    state.catalogue = normaliseCatalogue(loaded);
    renderFilters();
    renderTable();
  }
}

main();
