// The Launch form's sweep mode: a "sweep" toggle next to every option and config field turns
// its input into a list ("0, 5, 25") or a range ("0.01..1 x5 log"); a live preview says how
// many runs that queues; the page then posts `{"base", "grid", "seeds"}` to /api/sweeps.

import { el } from "./ui.js";

const RANGE = /^\s*(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)\s*x\s*(\d+)\s*(log|linear)?\s*$/;
const NOT_SWEPT = new Set(["method", "preset", "dataset_path"]);

function parseScalar(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** "0, 5, 25" -> [0, 5, 25]; "0.01..1 x5 log" -> {start, stop, steps, scale}; "" -> null. */
export function parseSweepValues(text) {
  if (!text.trim()) return null;
  const range = RANGE.exec(text);
  if (range) return { start: Number(range[1]), stop: Number(range[2]), steps: Number(range[3]), scale: range[4] || "linear" };
  return text.split(",").map((part) => part.trim()).filter(Boolean).map(parseScalar);
}

/** A range's values, as the server computes them (contract/sweeps.py). */
function rangeValues({ start, stop, steps, scale }) {
  const at = (i) => (scale === "log" ? Math.exp(Math.log(start) + ((Math.log(stop) - Math.log(start)) * i) / (steps - 1)) : start + ((stop - start) * i) / (steps - 1));
  return Array.from({ length: steps }, (_, i) => Number(at(i).toPrecision(6)));
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** How many runs one axis makes: an integer field's range is rounded and deduplicated. */
function valueCount(spec, integer) {
  if (spec === null) return 0;
  if (Array.isArray(spec)) return spec.length;
  if (!(spec.steps >= 2)) return spec.steps;
  const values = rangeValues(spec);
  return integer ? new Set(values.map(roundHalfEven)).size : values.length;
}

/** The grid key of a form field: an option's bare name, a config field's name. */
function gridKey(path) {
  return path.startsWith("options.") ? path.slice("options.".length) : path;
}

function isIntegerField(field) {
  return field.querySelector("[data-type]")?.dataset.type === "integer";
}

function sweptFields(root) {
  return [...root.querySelectorAll(".field[data-sweep='on']")];
}

/** {key: values or range} of the fields in sweep mode. */
export function sweepGrid(root) {
  const grid = {};
  for (const field of sweptFields(root)) {
    const spec = parseSweepValues(field.querySelector(".sweep-values").value);
    if (spec !== null) grid[gridKey(field.dataset.field)] = spec;
  }
  return grid;
}

/** The seeds typed in the preview box ([0] by default). */
export function sweepSeeds(root) {
  const box = root.querySelector("#sweep-seeds");
  const seeds = box ? parseSweepValues(box.value) : null;
  return Array.isArray(seeds) && seeds.length ? seeds : null;
}

/** Paths of the fields in sweep mode (their single value is left out of the base config). */
export function sweptPaths(root) {
  return new Set(sweptFields(root).map((f) => f.dataset.field));
}

/** The form field a sweep error ("grid.variance_weight", "base.epochs") belongs to. */
export function sweepErrorField(root, field) {
  if (field.startsWith("grid.")) {
    const key = field.slice("grid.".length);
    const match = [...root.querySelectorAll(".field[data-field]")].find((f) => gridKey(f.dataset.field) === key.replace(/^options\./, ""));
    return match ? match.dataset.field : field;
  }
  return field.replace(/^base\./, "");
}

function updatePreview(root, onChange) {
  const preview = root.querySelector("#sweep-preview");
  const fields = sweptFields(root);
  if (!preview) return;
  preview.hidden = fields.length === 0;
  const counts = fields.map((f) => [gridKey(f.dataset.field), valueCount(parseSweepValues(f.querySelector(".sweep-values").value), isIntegerField(f))]);
  const seeds = sweepSeeds(root) || [0];
  const total = counts.reduce((n, [, c]) => n * c, 1) * seeds.length;
  const described = counts.map(([key, c]) => `${c} ${key}`).join(" × ");
  const tooMany = fields.length > 2 ? " — a map has at most 2 axes" : "";
  preview.querySelector(".sweep-count").textContent = `${described} × ${seeds.length} seed${seeds.length === 1 ? "" : "s"} = ${total} run${total === 1 ? "" : "s"}${tooMany}`;
  preview.dataset.runs = String(total);
  onChange(fields.length ? total : null);
}

/** Add the toggles to every field of the form, and the preview box before `before`. */
export function attachSweepToggles(root, before, onChange) {
  const preview = el(
    "div",
    { id: "sweep-preview", class: "sweep-preview", hidden: true, "aria-live": "polite" },
    el("strong", {}, "Sweep: "),
    el("span", { class: "sweep-count" }),
    el("label", { for: "sweep-seeds" }, " seeds "),
    el("input", { id: "sweep-seeds", type: "text", value: "0", class: "sweep-seeds", "aria-label": "seeds of every grid point", oninput: () => updatePreview(root, onChange) }),
  );
  before.before(preview);
  for (const field of root.querySelectorAll(".field[data-field]")) {
    const path = field.dataset.field;
    if (NOT_SWEPT.has(path)) continue;
    const input = field.querySelector("input, select");
    const values = el("input", {
      type: "text",
      class: "sweep-values",
      id: `sweep-${path.replace(/\./g, "-")}`,
      placeholder: "0, 5, 25   or   0.01..1 x5 log",
      "aria-label": `values of ${path} to sweep`,
      hidden: true,
      oninput: () => updatePreview(root, onChange),
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
          if (on && !values.value) values.value = input.type === "checkbox" ? "true, false" : input.value;
          if (on) values.focus();
          updatePreview(root, onChange);
        },
      },
      "sweep",
    );
    field.querySelector(".help").before(toggle, values);
  }
}
