// Verdict kinds and their words (their colours are in colours.js): one place so every page agrees.

export { VERDICT_COLORS } from "./colours.js";

export const VERDICT_LABELS = {
  healthy: "healthy",
  dimensional_collapse: "dimensional collapse",
  complete_collapse: "complete collapse",
  pending: "no verdict yet",
};

/** Verdict kind of a run or record, "pending" when there is none yet. */
export function verdictKind(verdict) {
  const kind = verdict && (verdict.kind || verdict);
  return typeof kind === "string" && kind in VERDICT_LABELS ? kind : "pending";
}

/** A coloured badge element: <span class="badge verdict-complete_collapse">complete collapse</span>. */
export function verdictBadge(verdict) {
  const kind = verdictKind(verdict);
  const badge = document.createElement("span");
  badge.className = `badge verdict-${kind}`;
  badge.textContent = VERDICT_LABELS[kind];
  if (verdict && verdict.reason) badge.title = verdict.reason;
  return badge;
}

/** One-line description: "complete collapse from epoch 3". */
export function verdictHeadline(verdict) {
  const kind = verdictKind(verdict);
  if (kind === "pending") return VERDICT_LABELS.pending;
  const onset = verdict.onset_epoch;
  if (kind === "healthy" || onset === null || onset === undefined) return VERDICT_LABELS[kind];
  return `${VERDICT_LABELS[kind]} from epoch ${onset}`;
}

/** The verdict's findings (what the kind does not say), one sentence each, as a list element;
 * null when there are none. */
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
