// Reading runs and the method catalogue: tolerant accessors over the API's JSON so pages
// do not each re-implement "where is the config / progress / option default".

/** Normalise `/api/methods` into {methods, presets, configSchema, configDefaults, limits}. */
export function normaliseCatalogue(payload) {
  const asList = (value) => {
    if (!value) return [];
    if (Array.isArray(value)) return value;
    return Object.entries(value).map(([name, item]) => ({ name, ...item }));
  };
  const methods = asList(payload.methods || (payload.presets ? null : payload)).map((m) => {
    const schema = m.options_schema || m.schema || m.options || { type: "object", properties: {} };
    return {
      name: m.name,
      title: m.title || m.name,
      paper: m.paper || "",
      family: m.family || "",
      description: m.description || "",
      schema,
      defaults: m.defaults || {},
      optionDefaults: { ...schemaDefaults(schema), ...(m.option_defaults || m.options_defaults || {}) },
    };
  });
  const presets = asList(payload.presets).map((p) => ({
    name: p.name,
    title: p.title || p.name,
    description: p.description || "",
    config: p.config || {},
    expected: p.expected || null,
    method: (p.config && p.config.method) || p.method,
  }));
  const configSchema = payload.config_schema || null;
  const configDefaults = { ...schemaDefaults(configSchema), ...(payload.config_defaults || {}) };
  return { methods, presets, configSchema, configDefaults, limits: payload.limits || {} };
}

/** Defaults declared in a JSON Schema's properties. */
export function schemaDefaults(schema) {
  const out = {};
  for (const [key, prop] of Object.entries((schema && schema.properties) || {})) {
    if (prop && "default" in prop) out[key] = prop.default;
  }
  return out;
}

/** The run's resolved config; a list summary carries the key fields at the top level. */
export function runConfig(run) {
  return (run && (run.config || run)) || {};
}

/** Number of epochs the run will train. */
export function totalEpochs(run) {
  if (!run) return null;
  if (typeof run.epochs_total === "number") return run.epochs_total;
  if (typeof run.epochs === "number") return run.epochs;
  return runConfig(run).epochs ?? null;
}

export function runMethod(run) {
  return run.method || runConfig(run).method || "?";
}

export function runPreset(run) {
  return run.preset || runConfig(run).preset || null;
}

/** A readable name: preset title when known, else the method. */
export function runTitle(run, catalogue) {
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

/** Options that differ from the method's defaults, e.g. ["stop_gradient=false"]. */
export function keyOptions(run, catalogue) {
  const options = runConfig(run).options || {};
  const method = catalogue && catalogue.methods.find((m) => m.name === runMethod(run));
  const defaults = method ? method.optionDefaults : {};
  return Object.entries(options)
    .filter(([key, value]) => !(key in defaults) || JSON.stringify(defaults[key]) !== JSON.stringify(value))
    .filter(([key, value]) => method || value === false || value === 0)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`);
}

/** {epoch, epochs, step, steps, fraction, imagesPerS}: overall fraction done, including the
 * part of the current epoch (progress events: {"epoch", "step", "steps", "images_per_s"}). */
export function runProgress(run) {
  const progress = run.progress && typeof run.progress === "object" ? run.progress : {};
  const epochs = totalEpochs(run);
  const done = run.last_epoch ?? 0;
  const step = progress.step ?? null;
  const steps = progress.steps ?? null;
  const training = run.status === "running" && step !== null && steps && (progress.epoch ?? done + 1) > done;
  const within = training ? Math.min(1, step / steps) : 0;
  let fraction = epochs ? Math.min(1, (done + within) / epochs) : 0;
  if (run.status === "succeeded") fraction = 1;
  return { epoch: done, epochs, step, steps, fraction, imagesPerS: progress.images_per_s ?? null };
}

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export function isActive(run) {
  return run && (run.status === "queued" || run.status === "running");
}

/** Failure / cancel reason, if the run has one. */
export function runReason(run) {
  return run.error || run.reason || run.failure_reason || run.status_reason || run.message || null;
}

/** Number of classes for the kNN chance level. */
export function numClasses(run, projection) {
  if (run && (run.num_classes || run.n_classes)) return run.num_classes || run.n_classes;
  if (projection && projection.classNames) return projection.classNames.length;
  const dataset = runConfig(run).dataset;
  return { digits: 10, cifar10: 10, stl10: 10, cifar100: 100 }[dataset] || null;
}

/** Level of the trivial (collapsed) solution of a method's loss where it is known. */
export function collapseLoss(run) {
  const method = runMethod(run);
  if (method === "simsiam") return { value: -1, label: "collapsed: −cos = −1" };
  return null;
}

/** Effective-rank history for sparklines, from the run summary or its records. */
export function rankHistory(run, records) {
  const fromRun = run.effective_rank_history || run.rank_history || (run.sparkline && run.sparkline.effective_rank) || run.sparkline;
  if (Array.isArray(fromRun)) return fromRun.filter((v) => typeof v === "number");
  if (records) return records.map((r) => r.projector && r.projector.effective_rank).filter((v) => typeof v === "number");
  return [];
}
