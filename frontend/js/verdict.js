// @ts-check
// Verdict kinds and their words (their colours are in colours.js): one place so every page agrees.
// The kinds, in order of severity, and their words are the metric catalogue's `verdicts` (GET
// /api/metrics; contract/records.py declares them): a page hands the catalogue to useVerdicts
// before it draws a verdict (useMetricCatalogue of plots.js does, for the pages with charts).

export { VERDICT_COLORS } from "./colours.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A verdict (a record's, a run's), a part of one (a preset's expected `{kind}`), its kind
 * alone (a sweep cell's verdict_kind), or none yet.
 * @typedef {Partial<Api.Verdict> | string | null | undefined} VerdictLike */

/** The kind of a run or sweep cell with no verdict yet (its colour is in colours.js too). */
export const PENDING = "pending";

/** kind -> its words, healthy first, the worst last; set by useVerdicts.
 * @type {Map<string, string>} */
let LABELS = new Map();

/** Read the verdict kinds and their words from the metric catalogue (GET /api/metrics).
 * @param {Api.MetricCatalogue} catalogue */
export function useVerdicts(catalogue) {
  LABELS = new Map(catalogue.verdicts.map((v) => [v.kind, v.label]));
}

/** The verdict kinds in order of severity: healthy first, the worst last. */
export function verdictKinds() {
  return [...LABELS.keys()];
}

/** A verdict kind in words: "dimensional collapse"; for none, "no verdict yet", or "no
 * verdict" for a run that has ended (failed or cancelled before an epoch was measured).
 * @param {string | null | undefined} kind @param {boolean} [ended] */
export function verdictLabel(kind, ended = false) {
  return (kind && LABELS.get(kind)) || (ended ? "no verdict" : "no verdict yet");
}

/** Verdict kind of a run or record, "pending" when there is none yet.
 * @param {VerdictLike} verdict
 * @returns {Api.Verdict["kind"] | typeof PENDING} */
export function verdictKind(verdict) {
  const kind = verdict && (typeof verdict === "string" ? verdict : verdict.kind);
  // a kind of the catalogue's (useVerdicts), which are Api.Verdict's
  return typeof kind === "string" && LABELS.has(kind)
    ? /** @type {Api.Verdict["kind"]} */ (kind)
    : PENDING;
}

/** A coloured badge element:
 * <span class="badge verdict-complete_collapse">complete collapse</span>.
 * @param {VerdictLike} verdict @param {boolean} [ended] the run has ended (verdictLabel) */
export function verdictBadge(verdict, ended = false) {
  const kind = verdictKind(verdict);
  const badge = document.createElement("span");
  badge.className = `badge verdict-${kind}`;
  badge.textContent = verdictLabel(kind, ended);
  const full = typeof verdict === "object" ? verdict : null;
  const hover = [full && full.reason, causeSentence(full && full.cause)].filter(Boolean);
  if (hover.length) badge.title = hover.join("\n");
  return badge;
}

/** A cause's guard in words: "stop gradient".
 * @param {string} guard */
export function guardLabel(guard) {
  return String(guard).replace(/_/g, " ");
}

/** "Cause: centering. <reason> Try: <advice>", or "" without a cause (healthy, old records).
 * @param {Api.Cause | null | undefined} cause */
export function causeSentence(cause) {
  if (!cause || !cause.guard) return "";
  const reason = cause.reason || "";
  return `Cause: ${guardLabel(cause.guard)}. ${reason} Try: ${cause.advice || ""}`.trim();
}

/** The cause under a verdict: the guard that failed, the reason with its numbers, the advice
 * and the signals checked; null without a cause.
 * @param {Api.Cause | null | undefined} cause */
export function causeBlock(cause) {
  if (!cause || !cause.guard) return null;
  const block = document.createElement("div");
  block.className = `verdict-cause cause-${cause.guard}`;
  block.dataset.guard = cause.guard;
  const head = document.createElement("p");
  head.className = "cause-head";
  const since =
    cause.onset_epoch === null || cause.onset_epoch === undefined
      ? ""
      : ` (from epoch ${cause.onset_epoch})`;
  head.textContent =
    cause.guard === "undetermined"
      ? `Cause undetermined${since}`
      : `Cause: ${guardLabel(cause.guard)}${since}`;
  const reason = document.createElement("p");
  reason.className = "cause-reason";
  reason.textContent = cause.reason;
  const advice = document.createElement("p");
  advice.className = "cause-advice";
  advice.textContent = `Try: ${cause.advice}`;
  block.append(head, reason, advice);
  if (cause.signals_checked && cause.signals_checked.length) {
    const checked = document.createElement("p");
    checked.className = "cause-signals muted small";
    checked.textContent = `Signals the guards look for: ${cause.signals_checked.join(", ")}`;
    block.append(checked);
  }
  return block;
}

/** One-line description: "complete collapse from epoch 3".
 * @param {Partial<Api.Verdict> | null | undefined} verdict
 * @param {boolean} [ended] the run has ended (verdictLabel) */
export function verdictHeadline(verdict, ended = false) {
  const kind = verdictKind(verdict);
  if (kind === PENDING) return verdictLabel(kind, ended);
  const onset = verdict?.onset_epoch;
  if (kind === "healthy" || onset === null || onset === undefined) return verdictLabel(kind);
  return `${verdictLabel(kind)} from epoch ${onset}`;
}

/** The verdict's findings (what the kind does not say), one sentence each, as a list element;
 * null when there are none.
 * @param {Partial<Api.Verdict> | null | undefined} verdict */
export function findingsList(verdict) {
  const findings = (verdict && verdict.findings) || [];
  if (!findings.length) return null;
  const list = document.createElement("ul");
  list.className = "verdict-findings";
  for (const finding of findings) {
    const item = document.createElement("li");
    item.textContent = finding;
    list.append(item);
  }
  return list;
}
