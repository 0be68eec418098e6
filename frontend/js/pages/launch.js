// @ts-check
// Launch page (`/launch`): a form generated from `/api/methods` (method options) and the run
// config's JSON Schema (common fields), presets one click away, server-side 422 errors shown
// next to the field, "launch again with changes" prefill (`?from=<run id>`), the zoo, and
// sweeps ("sweep" next to a field turns it into a list or range: sweep-form.js). Labels and
// alert receivers (contract/labels.py) go with the run, or with every run of a sweep.

import { ApiError, api } from "../api.js";
import { fieldFor, fieldValue, setFieldError, setFieldValue } from "../forms.js";
import { isExternal, normaliseCatalogue, runConfig, schemaDefaults } from "../model.js";
import {
  attachSweepToggles,
  sweepErrorField,
  sweepGrid,
  sweepSeeds,
  sweptPaths,
} from "../sweep-form.js";
import { el, loaded, queryState, renderHeader, reportWriteError, showState, toast } from "../ui.js";
import { useVerdicts, verdictBadge } from "../verdict.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** @import {Catalogue} from "../model.js" */
/** A JSON Schema as the form fields read it (forms.js): the config's and a method's options'.
 * @typedef {NonNullable<Parameters<typeof fieldFor>[1]>} JsonSchema */
/** A run request (a sweep's base): its method, preset and config fields.
 * @typedef {Api.SweepRequest["base"]} RunRequest */
/** A run's labels and alert receivers (contract/labels.py), as a run request carries them.
 * @typedef {Pick<RunRequest, "project" | "tags" | "note" | "alerts">} Labels */
/** A relaunched run's config (RunDetail.config), read by field name.
 * @typedef {Partial<Api.RunConfig> & Record<string, unknown>} Prefill */
/** @typedef {Catalogue["presets"][number]} Preset */
/** A field of the form (forms.js fieldFor): data-field is its path.
 * @typedef {HTMLElement & {dataset: {field: string}}} FormField */

// Common config fields, grouped; anything else in the schema lands in "More". Typed by the
// API's RunConfig, so a renamed or removed field fails tsc.
/** @type {[title: string, fields: (keyof Api.RunConfig)[], open: boolean][]} */
const GROUPS = [
  ["Data", ["dataset", "dataset_path", "train_size", "probe_size", "image_size"], true],
  [
    "Training",
    [
      "epochs",
      "batch_size",
      "optimizer",
      "lr",
      "schedule",
      "warmup_epochs",
      "weight_decay",
      "momentum",
      "seed",
    ],
    true,
  ],
  [
    "Architecture",
    [
      "backbone",
      "width",
      "patch_size",
      "vit_dim",
      "vit_depth",
      "vit_heads",
      "proj_hidden_dim",
      "proj_dim",
      "pred_hidden_dim",
    ],
    false,
  ],
  ["More", ["augment_strength", "knn_k", "device"], false],
];
const NOT_FORM_FIELDS = new Set(["method", "preset", "options"]);

// The labels' fields (contract/labels.py RunLabels): not config fields, so marked
// data-label, not data-field (which collectConfig and the sweep toggles read).
/** @type {[name: "project" | "tags" | "note" | "alerts", label: string,
 *   tag: "input" | "textarea", help: string][]} */
const LABEL_FIELDS = [
  ["project", "Project", "input", "Files the run under a project; the runs list filters by it."],
  [
    "tags",
    "Tags",
    "input",
    "Comma-separated, e.g. lr-sweep, resnet; the runs list filters by each.",
  ],
  ["note", "Note", "textarea", "Free text about the run, shown under its name."],
  [
    "alerts",
    "Alert webhooks",
    "textarea",
    "One URL a line (Slack or Mattermost incoming webhooks), told when the run collapses, " +
      "recovers, gets a cause, fails or ends; a sweep's, of its runs' collapses and failures " +
      "and of its end. Kept secret: not shown again.",
  ],
];

/** The page's state: main loads the catalogue and its config schema before anything is drawn.
 * @type {{catalogue: Catalogue | null, configSchema: JsonSchema | null,
 *   definitions: Record<string, JsonSchema>, method: string | null | undefined,
 *   preset: string | null, prefill: Prefill | null, externalFrom: string | null,
 *   prefillLabels: {project?: string | null, tags?: string[], note?: string, alerts?: string},
 *   sweepRuns: number | null}} */
const state = {
  catalogue: null,
  configSchema: null,
  definitions: {},
  method: null,
  preset: null,
  prefill: null, // config of the run being relaunched
  // `?from=` named a run trained outside Collapse Lab: it has no launch config to prefill
  externalFrom: null,
  prefillLabels: {}, // its project and tags
  sweepRuns: null, // runs the sweep in the form would queue; null = no field is swept
};

// launch.html's
const root = /** @type {HTMLElement} */ (document.getElementById("launch"));
const presetsBox = /** @type {HTMLElement} */ (document.getElementById("presets"));

/** The run config's JSON Schema with each field this server limits (MAX_EPOCHS...: the
 * catalogue's limits, by field name) bounded by the lower of the two maxima, so its field
 * states the one limit a launch meets.
 * @param {Record<string, any>} schema @param {Record<string, number>} limits
 * @returns {JsonSchema} */
function withServerLimits(schema, limits) {
  /** @param {Record<string, any>} prop @param {number} limit @returns {Record<string, any>} */
  const bounded = (prop, limit) =>
    prop.anyOf // nullable: its integer branch
      ? { ...prop, anyOf: prop.anyOf.map((/** @type {any} */ branch) => bounded(branch, limit)) }
      : prop.type === "integer"
        ? { ...prop, maximum: Math.min(prop.maximum ?? limit, limit) }
        : prop;
  const properties = { ...schema.properties };
  for (const [name, limit] of Object.entries(limits)) {
    if (properties[name]) properties[name] = bounded(properties[name], limit);
  }
  return { ...schema, properties };
}

/** The method catalogue: main loads it before anything is drawn. */
function loadedCatalogue() {
  return loaded(state.catalogue, "the method catalogue");
}

/** @param {string | null | undefined} name */
function methodInfo(name) {
  return loadedCatalogue().methods.find((m) => m.name === name);
}

/** @param {string} name */
function presetInfo(name) {
  return loadedCatalogue().presets.find((p) => p.name === name);
}

/** Value a field takes when the user changes nothing: schema default < method < preset < run.
 * @param {boolean} [withPreset] false: the method's alone (a preset the form departs from) */
function baseline(withPreset = true) {
  const method = methodInfo(state.method);
  const preset = withPreset && state.preset ? presetInfo(state.preset) : null;
  /** @type {Record<string, unknown>} */
  const general = {
    ...schemaDefaults(state.configSchema),
    ...loadedCatalogue().configDefaults,
    ...(method ? method.defaults : {}),
    ...(preset ? preset.config : {}),
  };
  /** @type {Record<string, unknown>} */
  const options = {
    ...(method ? method.optionDefaults : {}),
    // a preset's options are an object of option values
    ...(preset && preset.config.options
      ? /** @type {Record<string, unknown>} */ (preset.config.options)
      : {}),
  };
  delete general.options;
  return { general, options };
}

function renderPresets() {
  const presets = loadedCatalogue().presets;
  /** @param {Preset} preset */
  const card = (preset) =>
    el(
      "button",
      {
        type: "button",
        class: `preset-card${state.preset === preset.name ? " selected" : ""}`,
        "data-preset": preset.name,
        "aria-pressed": state.preset === preset.name ? "true" : "false",
        onclick: () => selectPreset(preset.name),
      },
      el("span", { class: "preset-title" }, preset.title),
      el("span", { class: "preset-desc" }, preset.description),
      preset.expected
        ? el(
            "span",
            { class: "preset-expected" },
            "expected: ",
            verdictBadge({ kind: preset.expected }),
          )
        : null,
    );
  // a method's own preset bears its name (barlow-twins: barlow_twins); the others switch a
  // guard off or weaken it, and some do not collapse (BYOL without its EMA): their badge says
  /** @param {Preset} p */
  const own = (p) => p.name.replaceAll("-", "_") === p.method;
  const standard = presets.filter(own);
  const ablations = presets.filter((p) => !own(p));
  presetsBox.replaceChildren(
    el("h2", { id: "presets-title" }, "Presets"),
    el(
      "p",
      { class: "muted" },
      "One click fills the form; change anything, then launch. " +
        "Ablations switch off the part of a method that prevents collapse. ",
      // the keyboard's way past the 25 preset buttons
      el("a", { href: "#launch-form", id: "skip-presets" }, "Skip to the form"),
    ),
    el("h3", {}, "Standard methods"),
    el("div", { class: "preset-grid" }, standard.map(card)),
    el("h3", {}, "Ablations"),
    el("div", { class: "preset-grid" }, ablations.map(card)),
  );
}

/** @param {string} name a preset's */
function selectPreset(name) {
  state.preset = name;
  state.method = /** @type {Preset} */ (presetInfo(name)).method;
  state.prefill = null;
  state.externalFrom = null;
  queryState.set({ preset: name, method: null, from: null });
  renderPresets();
  renderForm();
  /** @type {HTMLElement} */ (document.getElementById("field-method")).focus(); // renderForm's
}

/** The config fields by section, in GROUPS' order: [title, field names, open]. */
function fieldsBySection() {
  const properties = (state.configSchema && state.configSchema.properties) || {};
  const names = Object.keys(properties).filter((name) => !NOT_FORM_FIELDS.has(name));
  /** @type {Set<string>} */
  const placed = new Set(GROUPS.flatMap(([, fields]) => fields));
  /** @type {[title: string, fields: string[], open: boolean][]} */
  const sections = GROUPS.map(([title, fields, open]) => [
    title,
    fields.filter((f) => names.includes(f)),
    open,
  ]);
  const extra = names.filter((n) => !placed.has(n));
  if (extra.length) sections[sections.length - 1][1].push(...extra);
  return sections.filter(([, fields]) => fields.length);
}

function renderForm() {
  const method = methodInfo(state.method);
  const { general, options } = baseline();
  /** @type {Prefill} */
  const prefill = state.prefill || {};
  const methodSelect = el(
    "select",
    {
      id: "field-method",
      name: "method",
      "aria-describedby": "field-method-help field-method-error",
    },
    loadedCatalogue().methods.map((m) =>
      el("option", { value: m.name, selected: m.name === state.method }, m.title),
    ),
  );
  methodSelect.addEventListener("change", () => {
    state.method = methodSelect.value;
    state.preset = null;
    queryState.set({ method: state.method, preset: null });
    renderPresets();
    renderForm();
    /** @type {HTMLElement} */ (document.getElementById("field-method")).focus(); // the new one
  });
  const methodField = el(
    "div",
    { class: "field", "data-field": "method" },
    el("label", { for: "field-method" }, "Method"),
    methodSelect,
    el(
      "div",
      { id: "field-method-help", class: "help" },
      method ? `${method.family ? `${method.family} · ` : ""}${method.paper}` : "",
    ),
    el("div", { id: "field-method-error", class: "error", role: "alert" }),
  );
  const presetNote = state.preset
    ? el(
        "div",
        { class: "preset-note", "data-field": "preset" },
        "Preset: ",
        // a preset of the catalogue's (selectPreset and main see to it)
        el("strong", {}, /** @type {Preset} */ (presetInfo(state.preset)).title),
        " ",
        el(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: () => {
              state.preset = null;
              queryState.set({ preset: null, method: state.method });
              renderPresets();
              renderForm();
            },
          },
          "clear",
        ),
        el("div", { id: "preset-departed", class: "help", "aria-live": "polite" }),
        el("div", { class: "error", role: "alert" }),
      )
    : null;
  // a method's options_schema is a JSON Schema (pydantic's)
  /** @type {Record<string, JsonSchema>} */
  const optionProps = (method && /** @type {JsonSchema} */ (method.schema).properties) || {};
  const optionDefs = (method && /** @type {JsonSchema} */ (method.schema).$defs) || {};
  const optionFields = Object.entries(optionProps).map(([name, prop]) => {
    const field = fieldFor(`options.${name}`, prop, options[name], optionDefs);
    if (prefill.options && name in prefill.options) setFieldValue(field, prefill.options[name]);
    return field;
  });
  const sections = fieldsBySection().map(([title, names, open]) =>
    el(
      "details",
      {
        class: "form-section",
        open: open || names.some((n) => n in prefill && prefill[n] !== general[n]),
      },
      el("summary", {}, title),
      el(
        "div",
        { class: "field-grid" },
        names.map((name) => {
          const field = fieldFor(
            name,
            // fieldsBySection's names are the config schema's properties
            /** @type {{properties: Record<string, JsonSchema>}} */ (state.configSchema).properties[
              name
            ],
            general[name],
            state.definitions,
          );
          if (name in prefill) setFieldValue(field, prefill[name]);
          return field;
        }),
      ),
    ),
  );
  const formError = el("div", {
    id: "form-error",
    class: "form-error",
    role: "alert",
    hidden: true,
  });
  const submit = el("button", { type: "submit", id: "launch-button" }, "Launch run");
  const zoo = el(
    "button",
    { type: "button", id: "zoo-button", class: "secondary", onclick: launchZoo },
    "Launch the collapse zoo",
  );
  const form = el(
    "form",
    // focusable from "Skip to the form", so that Tab goes on inside it
    { id: "launch-form", novalidate: true, "aria-label": "Run configuration", tabindex: "-1" },
    state.prefill
      ? el(
          "div",
          { class: "prefill-note" },
          `Prefilled from run ${queryState.get("from")}: change what you want and launch.`,
        )
      : state.externalFrom
        ? el(
            "div",
            { class: "prefill-note", id: "external-from-note" },
            `Run ${state.externalFrom} was trained outside Collapse Lab (its own training ` +
              "loop): it has no launch config, so nothing is prefilled.",
          )
        : null,
    el("fieldset", {}, el("legend", {}, "Method"), methodField, presetNote),
    el(
      "fieldset",
      { id: "options-fieldset" },
      el("legend", {}, method ? `${method.title} options` : "Options"),
      optionFields.length
        ? el("div", { class: "field-grid" }, optionFields)
        : el("p", { class: "muted" }, "This method has no options."),
    ),
    sections,
    labelsFieldset(),
    formError,
    el(
      "div",
      { class: "actions" },
      submit,
      zoo,
      el(
        "span",
        { class: "muted small" },
        "The zoo queues every preset with this form's data, sizes, epochs, seed and device.",
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    launch();
  });
  form.addEventListener("input", showDepartures);
  // an error the server gave stays under its field until the field is edited, not after
  form.addEventListener("input", (event) => {
    const field = event.target instanceof Element ? event.target.closest(".field") : null;
    if (field && field.querySelector(".error")) setFieldError(field, "");
  });
  form.addEventListener("change", showDepartures);
  root.replaceChildren(form);
  showDepartures();
  state.sweepRuns = null;
  attachSweepToggles(
    root,
    formError,
    (runs) => {
      state.sweepRuns = runs;
      if (runs === null) submit.textContent = "Launch run";
      else
        submit.textContent = Number.isNaN(runs)
          ? "Launch sweep"
          : `Launch sweep (${runs} run${runs === 1 ? "" : "s"})`;
    },
    collectConfig,
  );
}

/** The "Labels and alerts" fieldset: every field optional, each with its own label; prefilled
 * from the relaunched run (its alerts are never served: backend/schemas.py shown_request). */
function labelsFieldset() {
  const prefill = state.prefillLabels;
  const fields = LABEL_FIELDS.map(([name, label, tag, help]) => {
    const id = `label-${name}`;
    const value = name === "tags" ? (prefill.tags || []).join(", ") : prefill[name] || "";
    const input = el(tag, {
      id,
      name,
      rows: tag === "textarea" ? 2 : null,
      "aria-describedby": `${id}-help ${id}-error`,
      placeholder: name === "alerts" ? "https://hooks.slack.com/services/…" : null,
    });
    // a form drawn again (another method or preset) keeps what was typed
    const typed = /** @type {HTMLInputElement | HTMLTextAreaElement | null} */ (
      document.getElementById(id)
    );
    input.value = typed ? typed.value : value;
    return el(
      "div",
      { class: "field", "data-label": name },
      el("label", { for: id }, label, el("span", { class: "muted small" }, " (optional)")),
      input,
      el("div", { id: `${id}-help`, class: "help" }, help),
      el("div", { id: `${id}-error`, class: "error", role: "alert" }),
    );
  });
  return el(
    "fieldset",
    { id: "labels-fieldset" },
    el("legend", {}, "Labels and alerts"),
    el("div", { class: "field-grid" }, fields),
  );
}

/** The labels typed (contract/labels.py): only those given. Tags split at commas, as the
 * run page's editor does; webhook URLs at any space or line break.
 * @returns {Labels} */
function collectLabels() {
  /** @param {string} name a LABEL_FIELDS' (labelsFieldset made its input) */
  const text = (name) =>
    /** @type {HTMLInputElement | HTMLTextAreaElement} */ (
      document.getElementById(`label-${name}`)
    ).value.trim();
  /** @param {string} value @param {string | RegExp} separator */
  const split = (value, separator) =>
    value
      .split(separator)
      .map((part) => part.trim())
      .filter(Boolean);
  /** @type {Labels} */
  const labels = {};
  if (text("project")) labels.project = text("project");
  const tags = split(text("tags"), ",");
  if (tags.length) labels.tags = tags;
  if (text("note")) labels.note = text("note");
  const alerts = split(text("alerts"), /\s+/);
  if (alerts.length) labels.alerts = alerts;
  return labels;
}

/** The field an error path names: "epochs", "options.x", or a label's ("tags.1" is tags).
 * @param {string} path */
function fieldAt(path) {
  if (!path) return null;
  const config = root.querySelector(`.field[data-field="${CSS.escape(path)}"]`);
  const label = path.split(".")[0];
  return config || root.querySelector(`.field[data-label="${CSS.escape(label)}"]`);
}

/** The form's values by field path, the swept fields left out.
 * @returns {Map<string, unknown>} */
function formValues() {
  const swept = sweptPaths(root);
  /** @type {Map<string, unknown>} */
  const values = new Map();
  for (const field of /** @type {NodeListOf<FormField>} */ (
    root.querySelectorAll(".field[data-field]")
  )) {
    const path = field.dataset.field;
    if (path === "method" || path === "preset" || swept.has(path)) continue;
    const value = fieldValue(field);
    if (value !== undefined) values.set(path, value);
  }
  return values;
}

/** The preset options the form sets otherwise than the preset does (its stop_gradient
 * ticked back on): the run is then not that preset, whose name would say what it is not.
 * @param {Map<string, unknown>} values @returns {string[]} */
function departures(values) {
  const preset = state.preset ? presetInfo(state.preset) : null;
  const options = /** @type {Record<string, unknown>} */ (preset?.config.options || {});
  return Object.entries(options)
    .filter(([name, value]) => {
      const path = `options.${name}`;
      return values.has(path) && JSON.stringify(values.get(path)) !== JSON.stringify(value);
    })
    .map(([name]) => name);
}

/** Say under the preset when the form departs from its own options (collectConfig then
 * launches a run of the method). */
function showDepartures() {
  const note = document.getElementById("preset-departed");
  if (!note) return;
  const changed = departures(formValues());
  const method = methodInfo(state.method);
  note.textContent = changed.length
    ? `${changed.join(", ")} ${changed.length === 1 ? "differs" : "differ"} from this ` +
      `preset's: launched as a ${method ? method.title : state.method} run with these settings.`
    : "";
}

/** Config to POST: method/preset plus every field that differs from its baseline; a form
 * that departs from its preset's own options is a run of the method, every field the
 * preset set sent as such.
 * @returns {RunRequest} */
function collectConfig() {
  const values = formValues();
  const keepsPreset = Boolean(state.preset) && !departures(values).length;
  const { general, options } = baseline(keepsPreset);
  /** @type {Record<string, unknown>} */
  const config = { method: state.method };
  if (keepsPreset) config.preset = state.preset;
  /** @type {Record<string, unknown>} */
  const chosenOptions = {};
  for (const [path, value] of values) {
    if (path.startsWith("options.")) {
      const name = path.slice("options.".length);
      if (JSON.stringify(value) !== JSON.stringify(options[name])) chosenOptions[name] = value;
    } else if (JSON.stringify(value) !== JSON.stringify(general[path] ?? null)) {
      config[path] = value;
    }
  }
  if (Object.keys(chosenOptions).length) config.options = chosenOptions;
  // a run request of the form's method: the server checks it (a 422 names the field)
  return /** @type {RunRequest} */ (config);
}

function clearErrors() {
  for (const field of root.querySelectorAll(".field[data-field], .field[data-label]"))
    setFieldError(field, "");
  // renderForm's
  const formError = /** @type {HTMLElement} */ (document.getElementById("form-error"));
  formError.hidden = true;
  formError.textContent = "";
}

/** Put each server error next to its field; unknown fields go to the form-level box. A run
 * request's error is located under its method (the union member): "simsiam.options.x".
 * @param {{field: string, message: string}[]} errors */
function showErrors(errors) {
  const leftovers = [];
  /** @type {Element | null} */
  let first = null;
  const methods = new Set(loadedCatalogue().methods.map((m) => m.name));
  for (const { field, message } of errors) {
    const [member, ...rest] = field.split(".");
    const path = methods.has(member) ? rest.join(".") : field;
    const text = message;
    const target = fieldAt(path);
    if (target) {
      setFieldError(target, text);
      first = first || target;
      const section = target.closest("details");
      if (section) section.open = true;
    } else {
      leftovers.push(path ? `${path}: ${text}` : text);
    }
  }
  // renderForm's
  const formError = /** @type {HTMLElement} */ (document.getElementById("form-error"));
  if (leftovers.length) {
    formError.hidden = false;
    formError.textContent = leftovers.join(" · ");
  }
  // every field has its input (forms.js fieldFor, labelsFieldset)
  if (first) /** @type {HTMLElement} */ (first.querySelector("input, select, textarea")).focus();
}

async function launch() {
  clearErrors();
  const button = /** @type {HTMLButtonElement} */ (document.getElementById("launch-button"));
  const label = button.textContent; // "Launch run" or "Launch sweep (n)", back after an error
  button.disabled = true;
  button.textContent = "Launching...";
  const sweeping = state.sweepRuns !== null;
  try {
    /** @type {Api.SweepCreated | Api.RunDetail} */
    let created;
    const { alerts, ...labels } = collectLabels();
    if (sweeping) {
      const grid = sweepGrid(root);
      // the labels go to every run; the receivers are the sweep's (its runs' troubles, its end)
      created = await api.launchSweep({
        base: { ...collectConfig(), ...labels },
        grid,
        seeds: "seed" in grid ? null : sweepSeeds(root),
        ...(alerts ? { alerts } : {}),
      });
    } else {
      created = await api.launch({ ...collectConfig(), ...labels, ...(alerts ? { alerts } : {}) });
    }
    window.location.href =
      created.url && created.url.startsWith("/")
        ? created.url
        : `/runs/${encodeURIComponent(created.id)}`;
  } catch (error) {
    button.disabled = false;
    button.textContent = label;
    if (error instanceof ApiError && error.status === 422) {
      const errors = error.fieldErrors();
      showErrors(
        sweeping ? errors.map((e) => ({ ...e, field: sweepErrorField(root, e.field) })) : errors,
      );
      toast("The server refused this config: see the highlighted field.", "error");
    } else {
      reportWriteError(error, "Launch");
    }
  }
}

async function launchZoo() {
  clearErrors();
  const config = /** @type {Record<string, unknown>} */ (collectConfig()); // read by field name
  const overrides = Object.fromEntries(
    // the fields the zoo sets for every preset (the catalogue's): the rest is each preset's own
    loadedCatalogue()
      .zooFields.filter((k) => k in config)
      .map((k) => [k, config[k]]),
  );
  const count = loadedCatalogue().presets.length;
  const described = Object.keys(overrides).length
    ? ` with ${Object.entries(overrides)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")}`
    : "";
  if (!window.confirm(`Queue all ${count} presets${described}?`)) return;
  const button = /** @type {HTMLButtonElement} */ (document.getElementById("zoo-button"));
  button.disabled = true;
  button.textContent = `Queuing ${count} runs...`;
  try {
    const created = await api.zoo(overrides);
    window.location.href =
      created.compare_url ||
      `/compare?runs=${created.data.map((r) => encodeURIComponent(r.id)).join(",")}`;
  } catch (error) {
    button.disabled = false;
    button.textContent = "Launch the collapse zoo";
    if (error instanceof ApiError && error.status === 422) {
      showErrors(
        error.fieldErrors().map((e) => ({ ...e, field: e.field.replace(/^overrides\./, "") })),
      );
    } else {
      reportWriteError(error, "Zoo launch");
    }
  }
}

async function main() {
  renderHeader("launch");
  showState(root, "loading", "Loading the method catalogue...");
  try {
    const [methods, metrics] = await Promise.all([api.methods(), api.metrics()]);
    state.catalogue = normaliseCatalogue(methods);
    useVerdicts(metrics); // the presets' expected verdicts are badges
    // the run config's JSON Schema (pydantic's)
    state.configSchema = withServerLimits(
      state.catalogue.configSchema || { properties: {} },
      state.catalogue.limits || {},
    );
    state.definitions = state.configSchema.$defs || {};
  } catch (error) {
    showState(
      root,
      "error",
      `Could not load the method catalogue: ${error instanceof Error ? error.message : error}.`,
    );
    return;
  }
  if (!state.catalogue.methods.length) {
    showState(root, "error", "The server lists no methods.");
    return;
  }
  const fromRun = queryState.get("from");
  const presetName = queryState.get("preset");
  if (fromRun) {
    try {
      const run = await api.getRun(fromRun);
      if (isExternal(run)) {
        // its config is the researcher's own, free-form: no launch config to start from
        state.externalFrom = fromRun;
      } else {
        // its config (RunDetail.config): a launched run has one
        state.prefill = /** @type {Prefill} */ (runConfig(run));
        state.prefillLabels = { project: run.project, tags: run.tags };
        state.method = state.prefill.method;
        state.preset =
          state.prefill.preset && presetInfo(state.prefill.preset) ? state.prefill.preset : null;
      }
    } catch (error) {
      toast(
        `Could not load run ${fromRun}: ${error instanceof Error ? error.message : error}`,
        "error",
      );
    }
  } else if (presetName && presetInfo(presetName)) {
    state.preset = presetName;
    state.method = /** @type {Preset} */ (presetInfo(presetName)).method; // just found
  }
  const methodName = queryState.get("method");
  if (!state.method)
    state.method =
      methodName && methodInfo(methodName) ? methodName : state.catalogue.methods[0].name;
  renderPresets();
  renderForm();
  if (!Object.keys(state.configSchema.properties || {}).length)
    toast("The server did not describe the run config: only method options are shown.", "error");
}

main();
