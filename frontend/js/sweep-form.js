// @ts-check
// The Launch form's sweep mode: a "sweep" toggle next to every option and config field turns
// its input into a list ("0, 5, 25") or a range ("0.01..1 x5 log"), sent as typed: the
// server reads that grammar (contract/sweeps.py parse_grid_values, its one definition). A
// live preview asks the server how many runs it queues (POST /api/sweeps/preview); the page
// then posts `{"base", "grid", "seeds"}` to /api/sweeps.

import { ApiError, api } from "./api.js";
import { el } from "./ui.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A field of the form (forms.js fieldFor): data-field is its path.
 * @typedef {HTMLElement & {dataset: {field: string}}} FormField */
/** Hears the run count of the preview: null when no field is swept, NaN when the grid has an
 * error.
 * @typedef {(runs: number | null) => void} RunsListener */
/** The form's base config, for the preview.
 * @typedef {() => Api.SweepRequest["base"]} BaseConfig */

const NOT_SWEPT = new Set(["method", "preset", "dataset_path"]);
const PREVIEW_DELAY_MS = 150;

/** The grid key of a form field: an option's bare name, a config field's name.
 * @param {string} path */
function gridKey(path) {
  return path.startsWith("options.") ? path.slice("options.".length) : path;
}

/** @param {ParentNode} root */
function sweptFields(root) {
  return [
    .../** @type {NodeListOf<FormField>} */ (root.querySelectorAll(".field[data-sweep='on']")),
  ];
}

/** {key: the values' text} of the fields in sweep mode (the server parses it).
 * @param {ParentNode} root */
export function sweepGrid(root) {
  /** @type {Record<string, string>} */
  const grid = {};
  for (const field of sweptFields(root)) {
    const values = /** @type {HTMLInputElement} */ (field.querySelector(".sweep-values"));
    const text = values.value.trim();
    if (text) grid[gridKey(field.dataset.field)] = text;
  }
  return grid;
}

/** The seeds typed in the preview box, "0, 1" -> [0, 1] (null: the base's seed).
 * @param {ParentNode} root */
export function sweepSeeds(root) {
  const box = /** @type {HTMLInputElement | null} */ (root.querySelector("#sweep-seeds"));
  const seeds = box
    ? box.value
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map(Number)
    : [];
  return seeds.length ? seeds : null;
}

/** Paths of the fields in sweep mode (their single value is left out of the base config).
 * @param {ParentNode} root */
export function sweptPaths(root) {
  return new Set(sweptFields(root).map((f) => f.dataset.field));
}

/** The form field a sweep error ("grid.variance_weight", "base.epochs") belongs to.
 * @param {ParentNode} root @param {string} field */
export function sweepErrorField(root, field) {
  if (field.startsWith("grid.")) {
    const key = field.slice("grid.".length);
    const fields = /** @type {NodeListOf<FormField>} */ (
      root.querySelectorAll(".field[data-field]")
    );
    const match = [...fields].find(
      (f) => gridKey(f.dataset.field) === key.replace(/^options\./, ""),
    );
    return match ? match.dataset.field : field;
  }
  return field.replace(/^base\./, "");
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let previewTimer;
let previewSeq = 0;

/** Ask the server how the swept fields expand, after a short pause in typing.
 * @param {ParentNode} root @param {RunsListener} onChange @param {BaseConfig} baseConfig */
function updatePreview(root, onChange, baseConfig) {
  const preview = /** @type {HTMLElement | null} */ (root.querySelector("#sweep-preview"));
  if (!preview) return;
  const fields = sweptFields(root);
  preview.hidden = fields.length === 0;
  clearTimeout(previewTimer);
  if (!fields.length) {
    onChange(null);
    return;
  }
  previewTimer = setTimeout(() => showPreview(root, onChange, baseConfig), PREVIEW_DELAY_MS);
}

/** @param {ParentNode} root @param {RunsListener} onChange @param {BaseConfig} baseConfig */
async function showPreview(root, onChange, baseConfig) {
  const seq = ++previewSeq;
  const grid = sweepGrid(root);
  // attachSweepToggles made it
  const count = /** @type {HTMLElement} */ (root.querySelector("#sweep-preview .sweep-count"));
  /** @type {string} */
  let text;
  let total = Number.NaN;
  try {
    const expanded = await api.previewSweep({
      base: baseConfig(),
      grid,
      seeds: "seed" in grid ? null : sweepSeeds(root),
    });
    const described = expanded.axes.map((a) => `${a.values.length} ${a.key}`).join(" × ");
    const seeds = expanded.seeds.length;
    total = expanded.runs;
    text =
      `${described} × ${seeds} seed${seeds === 1 ? "" : "s"} = ` +
      `${total} run${total === 1 ? "" : "s"}`;
  } catch (error) {
    const problems =
      error instanceof ApiError ? error.fieldErrors().map((e) => `${e.field}: ${e.message}`) : [];
    text = problems.length
      ? problems.join("; ")
      : error instanceof Error
        ? error.message
        : String(error);
  }
  if (seq !== previewSeq) return; // a later preview is on its way
  count.textContent = text;
  const preview = /** @type {HTMLElement} */ (root.querySelector("#sweep-preview"));
  preview.dataset.runs = String(total);
  onChange(total);
}

/** Add the toggles to every field of the form, and the preview box before `before`;
 * `onChange(runs)` hears the run count (null: no field swept; NaN: the grid has an error),
 * `baseConfig()` gives the form's base config for the preview.
 * @param {ParentNode} root @param {ChildNode} before
 * @param {RunsListener} onChange @param {BaseConfig} baseConfig */
export function attachSweepToggles(root, before, onChange, baseConfig) {
  const preview = el(
    "div",
    { id: "sweep-preview", class: "sweep-preview", hidden: true, "aria-live": "polite" },
    el("strong", {}, "Sweep: "),
    el("span", { class: "sweep-count" }),
    el("label", { for: "sweep-seeds" }, " seeds "),
    el("input", {
      id: "sweep-seeds",
      type: "text",
      value: "0",
      class: "sweep-seeds",
      "aria-label": "seeds of every grid point",
      oninput: () => updatePreview(root, onChange, baseConfig),
    }),
  );
  before.before(preview);
  const fields = /** @type {NodeListOf<FormField>} */ (root.querySelectorAll(".field[data-field]"));
  for (const field of fields) {
    const path = field.dataset.field;
    if (NOT_SWEPT.has(path)) continue;
    const input = /** @type {HTMLInputElement | HTMLSelectElement} */ (
      field.querySelector("input, select")
    );
    const values = el("input", {
      type: "text",
      class: "sweep-values",
      id: `sweep-${path.replace(/\./g, "-")}`,
      placeholder: "0, 5, 25   or   0.01..1 x5 log",
      "aria-label": `values of ${path} to sweep`,
      hidden: true,
      oninput: () => updatePreview(root, onChange, baseConfig),
    });
    const toggle = el(
      "button",
      {
        type: "button",
        class: "link-button sweep-toggle",
        "aria-pressed": "false",
        "data-sweep-toggle": path,
        onclick: () => {
          const on = field.dataset.sweep !== "on";
          field.dataset.sweep = on ? "on" : "off";
          toggle.setAttribute("aria-pressed", String(on));
          toggle.textContent = on ? "single value" : "sweep";
          values.hidden = !on;
          input.disabled = on;
          if (on && !values.value)
            values.value = input.type === "checkbox" ? "true, false" : input.value;
          if (on) values.focus();
          updatePreview(root, onChange, baseConfig);
        },
      },
      "sweep",
    );
    /** @type {Element} */ (field.querySelector(".help")).before(toggle, values);
  }
}
