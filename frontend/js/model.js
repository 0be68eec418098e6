// @ts-check
// Reading runs and the method catalogue: accessors over the API's JSON (the models in
// backend/schemas.py, published at /openapi.json) so pages do not each re-implement "where
// is the config / progress / option default". They read only fields the contract declares.
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A run as listed (RunSummary) or in full (RunDetail: config, request, placement...).
 * @typedef {Api.RunSummary & Partial<Api.RunDetail>} Run */
/** @typedef {ReturnType<typeof normaliseCatalogue>} Catalogue */
/** The method catalogue, or its empty lists until it arrives (or when it cannot be read).
 * @typedef {Pick<Catalogue, "methods" | "presets"> & Partial<Pick<Catalogue, "causeGuards">>
 *   & {configSchema: Catalogue["configSchema"] | null}} PageCatalogue */
/** A run-list event (`{"run_id", "seq", "data"}`): data is the run stream's event's, an epoch
 * record, a status or a progress (backend/events.py).
 * @typedef {{run_id: string, seq: number,
 *   data: (Partial<Api.EpochRecord> & {status?: Run["status"]}) | null}} ListEvent */

/** `/api/methods` (Catalogue) as {methods, presets, configSchema, configDefaults, limits}. */
/** @param {Api.Catalogue} payload */
export function normaliseCatalogue(payload) {
  const methods = payload.methods.map((m) => ({
    name: m.name,
    title: m.title,
    paper: m.paper,
    family: m.family,
    schema: m.options_schema,
    defaults: m.defaults,
    collapsedLoss: m.collapsed_loss,
    zDescription: m.z_description,
    optionDefaults: { ...schemaDefaults(m.options_schema), ...m.options_defaults },
  }));
  const presets = payload.presets.map((p) => ({
    name: p.name,
    title: p.title,
    description: p.description,
    config: p.config,
    expected: p.expected,
    method: p.method,
  }));
  const configSchema = payload.config_schema;
  const configDefaults = { ...schemaDefaults(configSchema), ...payload.config_defaults };
  return {
    methods,
    presets,
    configSchema,
    configDefaults,
    limits: payload.limits,
    causeGuards: payload.cause_guards || [],
    zooFields: payload.zoo_fields,
  };
}

/** Defaults declared in a JSON Schema's properties.
 * @param {Record<string, any> | null | undefined} schema
 * @returns {Record<string, unknown>} */
export function schemaDefaults(schema) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, prop] of Object.entries((schema && schema.properties) || {})) {
    if (prop && "default" in prop) out[key] = prop.default;
  }
  return out;
}

/** The run's resolved config (RunDetail.config); a list summary (RunSummary) carries the
 * key fields (method, dataset, backbone, proj_dim, seed, options) at the top level.
 * @param {Run | null | undefined} run @returns {Partial<Api.RunConfig> | Partial<Run>} */
export function runConfig(run) {
  return (run && (run.config || run)) || {};
}

/** The run's Configuration as [key, value] rows (ui.keyValueTable's), options one row each.
 * An external run shows the researcher's own config (what Monitor got as `config=`) and
 * where it comes from: it has no config of ours.
 * @param {Run} run @returns {[string, unknown][]} */
export function configRows(run) {
  const config = isExternal(run)
    ? { ...((run.external || {}).config || {}), source: run.source }
    : runConfig(run);
  return Object.entries(config).flatMap(
    /** @returns {[string, unknown][]} */ ([key, value]) =>
      key === "options" && value && typeof value === "object"
        ? Object.entries(value).map(([name, v]) => [`options.${name}`, v])
        : [[key, value]],
  );
}

/** Number of epochs the run will train.
 * @param {Run | null | undefined} run */
export function totalEpochs(run) {
  return run ? run.epochs : null;
}

/** @param {Run} run */
export function runMethod(run) {
  return run.method;
}

/** @param {Run} run */
export function runPreset(run) {
  return run.preset;
}

/** Whether the run was logged from an external training loop (collapse_lab.Monitor).
 * @param {Run | null | undefined} run */
export function isExternal(run) {
  return Boolean(run && run.source);
}

/** "train.py on gpu-box-3 (monitor)": where an external run comes from.
 * @param {Run} run */
function externalOrigin(run) {
  const source = run.source || {};
  const where = [source.script, source.host].filter(Boolean).join(" on ");
  return `${where || "unknown script"}${source.integration ? ` (${source.integration})` : ""}`;
}

/** One line of what the run trains: "simsiam on digits · resnet18 · seed 0", or for an
 *  external run where it comes from (it has no config of ours).
 * @param {Run} run */
export function runSetup(run) {
  if (isExternal(run)) return `external: ${externalOrigin(run)}`;
  const config = runConfig(run);
  return `${config.method} on ${config.dataset} · ${config.backbone} · seed ${config.seed}`;
}

/** A readable name: an external run's own name, the preset title when known, else the method.
 * @param {Run} run @param {Pick<Catalogue, "methods" | "presets"> | null} [catalogue] */
export function runTitle(run, catalogue) {
  // a stored name of only whitespace (the API refuses new ones) names nothing
  if (isExternal(run) && run.name && run.name.trim()) return run.name;
  const preset = runPreset(run);
  if (preset && catalogue) {
    const found = catalogue.presets.find((p) => p.name === preset);
    if (found) return found.title;
  }
  if (preset) return preset;
  const method = runMethod(run);
  const known = catalogue && catalogue.methods.find((m) => m.name === method);
  return known ? known.title : method;
}

/** The catalogue's entry of the run's method (undefined for a method it does not know: an
 * external run, a plugin not installed here).
 * @template {{name: string}} M
 * @param {Run} run @param {{methods: M[]} | null | undefined} catalogue
 * @returns {M | null | undefined} */
function catalogueMethod(run, catalogue) {
  return catalogue && catalogue.methods.find((m) => m.name === runMethod(run));
}

/** Options that differ from the method's defaults, e.g. ["stop_gradient=false"].
 * @param {Run} run @param {Pick<Catalogue, "methods" | "presets"> | null} [catalogue] */
export function keyOptions(run, catalogue) {
  const options = runConfig(run).options || {};
  const method = catalogueMethod(run, catalogue);
  const defaults = method ? method.optionDefaults : {};
  return Object.entries(options)
    .filter(
      ([key, value]) =>
        !(key in defaults) || JSON.stringify(defaults[key]) !== JSON.stringify(value),
    )
    .filter(([, value]) => method || value === false || value === 0)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`);
}

/** {epoch, epochs, step, steps, fraction, imagesPerS}: overall fraction done, including the
 * part of the current epoch (progress events: {"epoch", "step", "steps", "images_per_s"}).
 * @param {Run} run */
export function runProgress(run) {
  /** @type {Partial<Api.Progress>} */
  const progress = run.progress && typeof run.progress === "object" ? run.progress : {};
  const epochs = totalEpochs(run);
  const done = run.last_epoch ?? 0;
  const step = progress.step ?? null;
  const steps = progress.steps ?? null;
  const training =
    run.status === "running" && step !== null && steps && (progress.epoch ?? done + 1) > done;
  const within = training ? Math.min(1, step / steps) : 0;
  let fraction = epochs ? Math.min(1, (done + within) / epochs) : 0;
  if (run.status === "succeeded") fraction = 1;
  return { epoch: done, epochs, step, steps, fraction, imagesPerS: progress.images_per_s ?? null };
}

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

/** @param {Partial<Run> | null | undefined} run */
export function isActive(run) {
  return run && (run.status === "queued" || run.status === "running");
}

/** Failure / cancel reason, if the run has one.
 * @param {Run} run */
export function runReason(run) {
  return run.error || null;
}

/** Number of classes for the kNN chance level: the API's, else (an image folder) the
 * number of classes among the projection's labels.
 * @param {Run | null | undefined} run @param {Api.ProjectionPoints | null} [projection] */
export function numClasses(run, projection) {
  if (run && run.num_classes) return run.num_classes;
  if (projection && projection.labels) return new Set(projection.labels).size || null;
  return null;
}

/** The run's method's loss at the trivial (collapsed) solution, where the catalogue knows it
 * (MethodSpec.collapsed_loss, contract/methods/base.py).
 * @param {Run} run @param {{methods: {name: string, collapsedLoss: number | null}[]} | null}
 *   catalogue (normaliseCatalogue's) @returns {number | null} */
export function collapseLoss(run, catalogue) {
  const method = catalogueMethod(run, catalogue);
  return method ? method.collapsedLoss : null;
}

/** What the run's z is, in the catalogue's words (MethodSpec.z_description: the projector's
 * output for most methods, I-JEPA's target encoder's mean patch token), or null for a method
 * the catalogue does not know (an external run).
 * @param {Run} run @param {{methods: {name: string, zDescription: string}[]} | null} catalogue
 * @returns {string | null} */
export function embeddingDescription(run, catalogue) {
  const method = catalogueMethod(run, catalogue);
  return method ? method.zDescription : null;
}

/** Effective-rank history for sparklines, from the run summary or its records.
 * @param {Partial<Run>} run @param {Api.EpochRecord[]} [records] @returns {number[]} */
export function rankHistory(run, records) {
  if (Array.isArray(run.effective_rank_history))
    return run.effective_rank_history.filter((v) => typeof v === "number");
  if (records)
    return records.map((r) => r.projector.effective_rank).filter((v) => typeof v === "number");
  return [];
}

/** Where a run trained, from its epochs' placements: [label, value] rows (host, worker,
 * device, memory, versions, peak GPU memory, speed). A value lists every distinct one when
 * the run moved (a resumed run may change worker or card). Empty before the first epoch.
 * @param {Api.EpochRecord[]} records @returns {[string, string][]} */
export function placementRows(records) {
  const placed = records.map((r) => r.placement).filter((p) => p !== null && p !== undefined);
  if (!placed.length) return [];
  /** @param {(p: Api.Placement) => string | number | null | undefined} get */
  const distinct = (get) =>
    [...new Set(placed.map(get).filter((v) => v !== null && v !== undefined))].join(", ") || "–";
  const peaks = placed.map((p) => p.peak_memory_mib).filter((v) => typeof v === "number");
  const speeds = records.map((r) => r.images_per_s).filter((v) => typeof v === "number");
  return [
    ["host", distinct((p) => p.host)],
    ["worker", distinct((p) => p.worker)],
    [
      "device",
      distinct((p) =>
        p.device_memory_gib ? `${p.device} (${p.device_memory_gib} GiB)` : p.device,
      ),
    ],
    ["torch", distinct((p) => p.torch)],
    ["CUDA (of the torch build)", distinct((p) => p.cuda)],
    ["peak GPU memory", peaks.length ? `${Math.round(Math.max(...peaks))} MiB` : "– (CPU)"],
    [
      "training speed",
      speeds.length ? `${Math.round(speeds[speeds.length - 1])} images/s (last epoch)` : "–",
    ],
  ];
}
