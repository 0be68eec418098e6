// @ts-check
// Shared page chrome: navigation, health banner, API-token dialog, toasts, small helpers.

import { ApiError, api, getApiToken, isReadOnly, setApiToken } from "./api.js";
import "./colours.js"; // sets the verdict colours the header's health dot and badges use
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** An attribute of el: false, null and undefined leave it out, true sets it empty; `class`,
 * `text`, `on<event>` (a listener) and `dataset` (an object) are set as properties.
 * @typedef {string | number | boolean | null | undefined | ((event: Event) => unknown)
 *   | Record<string, string>} Attribute */
/** A child of el: a node or text (numbers are written out); null, undefined and false are
 * left out, and a list's items are children.
 * @typedef {Node | string | number | boolean | null | undefined} Child */

const HEALTH_POLL_MS = 10000;

/** document.createElement with attributes and children in one call.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, Attribute>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]} */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = String(value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show a transient message at the bottom of the screen.
 * @param {string} message @param {string} [kind] "info" or "error" (its style) */
export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = el("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = el("div", { class: `toast toast-${kind}`, text: message });
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** Copy text to the clipboard, falling back to a prompt where the API is unavailable.
 * @param {string} text @param {string} [what] what it is, in the messages */
export async function copyText(text, what = "Link") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied to the clipboard`);
  } catch {
    window.prompt(`Copy this ${what.toLowerCase()}:`, text);
  }
}

/** Fill #app-header with the navigation bar; `active` is "runs" | "launch" | "compare" (null:
 * none).
 * @param {string | null} active */
export function renderHeader(active) {
  // every page has one (frontend/*.html)
  const header = /** @type {HTMLElement} */ (document.getElementById("app-header"));
  const readOnly = isReadOnly();
  /** @param {string} href @param {string} name @param {string} label */
  const link = (href, name, label) =>
    el(
      "a",
      {
        href,
        class: active === name ? "active" : "",
        "aria-current": active === name ? "page" : null,
      },
      label,
    );
  const nav = el(
    "nav",
    { "aria-label": "Main" },
    el("a", { href: readOnly ? "#" : "/", class: "brand" }, "Collapse Lab"),
    readOnly ? el("span", { class: "readonly-tag" }, "read-only shared view") : null,
    readOnly ? null : link("/", "runs", "Runs"),
    readOnly ? null : link("/launch", "launch", "Launch"),
    readOnly ? null : link("/compare", "compare", "Compare"),
    el("span", { class: "spacer" }),
    el("span", { id: "health-dot", class: "health-dot", title: "checking the service..." }),
    readOnly
      ? null
      : el(
          "button",
          { type: "button", id: "token-button", class: "link-button", onclick: openTokenDialog },
          tokenLabel(),
        ),
  );
  header.replaceChildren(nav);
  const banner = el("div", {
    id: "health-banner",
    class: "health-banner",
    role: "alert",
    hidden: true,
  });
  header.after(banner);
  pollHealth();
}

function tokenLabel() {
  return getApiToken() ? "API token ✓" : "API token";
}

/** Ask for the API token that protects writes (stored in this browser only). */
function openTokenDialog() {
  let dialog = /** @type {HTMLDialogElement | null} */ (document.getElementById("token-dialog"));
  if (!dialog) {
    const input = el("input", {
      id: "token-input",
      type: "password",
      autocomplete: "off",
      "aria-describedby": "token-help",
    });
    const created = el(
      "dialog",
      { id: "token-dialog", "aria-labelledby": "token-title" },
      el(
        "form",
        { method: "dialog" },
        el("h2", { id: "token-title" }, "API token"),
        el(
          "p",
          { id: "token-help" },
          "When the server sets API_TOKEN, launching, cancelling and sharing need it. " +
            "It is kept in this browser only.",
        ),
        el("label", { for: "token-input" }, "Token"),
        input,
        el(
          "div",
          { class: "actions" },
          el("button", { value: "cancel", type: "submit", class: "secondary" }, "Cancel"),
          el("button", { value: "clear", type: "submit", class: "secondary" }, "Forget"),
          el("button", { value: "save", type: "submit" }, "Save"),
        ),
      ),
    );
    created.addEventListener("close", () => {
      if (created.returnValue === "save") setApiToken(input.value.trim());
      if (created.returnValue === "clear") setApiToken("");
      const button = document.getElementById("token-button");
      if (button) button.textContent = tokenLabel();
    });
    document.body.append(created);
    dialog = created;
  }
  /** @type {HTMLInputElement} */ (dialog.querySelector("input")).value = getApiToken();
  dialog.showModal();
}

/** Explain a failed write: 401/403 means the token is missing or wrong.
 * @param {unknown} error what the write threw (an ApiError, or the fetch's TypeError...)
 * @param {string} action what failed, in words: "Launch" */
export function reportWriteError(error, action) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    toast(`${action} refused: this server protects writes with an API token.`, "error");
    if (!isReadOnly()) openTokenDialog();
    return;
  }
  toast(`${action} failed: ${(error instanceof Error && error.message) || error}`, "error");
}

/** Human sentences for the parts /api/health (backend/schemas.py Health) reports as down.
 * @param {Api.Health} health */
function healthProblems(health) {
  const problems = [];
  if (!health.database.ok) problems.push("The database is unreachable.");
  if (!health.redis.ok) problems.push("Redis (queue and live events) is unreachable.");
  if (!health.workers.ok)
    problems.push("No training worker is running: queued runs will wait until one starts.");
  if (!problems.length && health.status !== "ok")
    problems.push(`The service reports status "${health.status}".`);
  return problems;
}

async function pollHealth() {
  const banner = document.getElementById("health-banner");
  const dot = document.getElementById("health-dot");
  /** @type {string[]} */
  let problems;
  try {
    problems = healthProblems(await api.health());
  } catch {
    problems = ["The API is unreachable: data on this page may be stale. Retrying..."];
  }
  if (banner) {
    banner.hidden = problems.length === 0;
    banner.replaceChildren(...problems.map((text) => el("div", {}, text)));
  }
  if (dot) {
    dot.classList.toggle("down", problems.length > 0);
    dot.title = problems.length ? problems.join(" ") : "API, Redis and worker are up";
  }
  setTimeout(pollHealth, HEALTH_POLL_MS);
}

/** Replace a container's content with a state message (loading / empty / error).
 * @param {Element} container @param {"loading" | "empty" | "error"} kind
 * @param {string | Node} message */
export function showState(container, kind, message) {
  container.replaceChildren(
    el(
      "div",
      { class: `state state-${kind}`, role: kind === "error" ? "alert" : "status" },
      message,
    ),
  );
}

/**
 * Waits for Plotly.js (`ready`: plots.js's plotlyReady); when it cannot load, says so in
 * `container` instead of drawing ("the plots cannot be drawn") and resolves false.
 * @param {Promise<unknown>} ready
 * @param {HTMLElement} container
 * @param {string} what
 * @returns {Promise<boolean>}
 */
export async function plotlyLoaded(ready, container, what) {
  try {
    await ready;
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    showState(container, "error", `${why}: ${what} cannot be drawn.`);
    return false;
  }
}

/**
 * The "Diagnostics of:" radio group of the run and compare pages: the embedding z (the
 * projector's output for most methods; what it is for the run's method in `zHelp`, shown on
 * hover) or the backbone representation h. `onChange(which)` runs when the reader picks the
 * other one.
 * @param {string} current
 * @param {(which: "projector" | "backbone") => void} onChange
 * @param {string | null} [zHelp]
 */
export function representationPicker(current, onChange, zHelp = null) {
  return el(
    "div",
    {
      id: "rep-picker",
      class: "view-controls",
      role: "radiogroup",
      "aria-label": "representation",
    },
    el("span", { class: "muted" }, "Diagnostics of:"),
    /** @type {("projector" | "backbone")[]} */ (["projector", "backbone"]).map((which) =>
      el(
        "label",
        { class: "radio", title: which === "projector" ? zHelp : null },
        el("input", {
          type: "radio",
          name: "rep",
          value: which,
          checked: current === which,
          onchange: () => onChange(which),
        }),
        which === "projector" ? " embedding z" : " backbone representation h",
      ),
    ),
  );
}

/** The representation to draw: h is offered only where a record carries it (an external run
 * may log z alone, and h's charts would stand empty), so the picker is hidden and the page
 * falls back to z until one does.
 * @param {"projector" | "backbone"} which @param {Api.EpochRecord[]} records
 * @returns {"projector" | "backbone"} */
export function offeredRepresentation(which, records) {
  const hasBackbone = records.some((r) => Boolean(r.backbone));
  const picker = document.getElementById("rep-picker");
  if (picker) picker.hidden = !hasBackbone;
  const shown = hasBackbone || !records.length ? which : "projector";
  for (const input of document.querySelectorAll('#rep-picker input[name="rep"]'))
    /** @type {HTMLInputElement} */ (input).checked =
      /** @type {HTMLInputElement} */ (input).value === shown;
  return shown;
}

/** "3 min ago" style time.
 * @param {string | null | undefined} iso */
export function timeAgo(iso) {
  if (!iso) return "";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** Read and write view state in the query string without reloading. */
export const queryState = {
  /**
   * @overload
   * @param {string} key
   * @param {string} fallback
   * @returns {string}
   */
  /**
   * @overload
   * @param {string} key
   * @returns {string | null}
   */
  /** @param {string} key @param {string | null} [fallback] */
  get(key, fallback = null) {
    const value = new URLSearchParams(window.location.search).get(key);
    return value === null ? fallback : value;
  },
  /** Every value of a repeated parameter (`?tag=a&tag=b`), in order.
   * @param {string} key @returns {string[]} */
  getAll(key) {
    return new URLSearchParams(window.location.search).getAll(key);
  },
  /** @param {Record<string, string | number | string[] | null | undefined>} updates "", null
   * and [] remove; a list is written as the parameter repeated, each of its values once */
  set(updates) {
    const params = new URLSearchParams(window.location.search);
    for (const [key, value] of Object.entries(updates)) {
      params.delete(key);
      if (Array.isArray(value)) for (const item of value) params.append(key, item);
      else if (value !== null && value !== undefined && value !== "")
        params.set(key, String(value));
    }
    const query = params.toString();
    window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
  },
};

/** What a page's main loads before drawing anything (the run, the sweep, the catalogue);
 * throws, naming it, when read before.
 * @template T @param {T | null} value @param {string} what @returns {T} */
export function loaded(value, what) {
  if (value === null) throw new Error(`${what} is not loaded yet`);
  return value;
}

/** Format a number for tables: 3 significant digits, dash for missing.
 * @param {unknown} value @param {number} [digits] */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return Number(value.toPrecision(digits)).toString();
}

/** A value as a table shows it: numbers with fmt, a missing one as "–" at any depth (a
 * config's nested null too), lists as [1, –, {z: 2}], nested strings quoted.
 * @param {unknown} value @returns {string} */
function displayValue(value) {
  if (Array.isArray(value)) return `[${value.map(nestedValue).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([key, v]) => `${key}: ${nestedValue(v)}`);
    return `{${entries.join(", ")}}`;
  }
  return fmt(value, 6);
}

/** @param {unknown} value */
function nestedValue(value) {
  // quoted inside a list or object, so ["a, b"] is not read as two strings
  return typeof value === "string" ? JSON.stringify(value) : displayValue(value);
}

/** A two-column table of [label, value] rows (values formatted with displayValue).
 * @param {[string, unknown][]} rows @param {Record<string, Attribute>} [attributes] */
export function keyValueTable(rows, attributes = {}) {
  return el(
    "table",
    { class: "config-table", ...attributes },
    el(
      "tbody",
      {},
      rows.map(([key, value]) =>
        el("tr", {}, el("th", { scope: "row" }, key), el("td", {}, displayValue(value))),
      ),
    ),
  );
}

/** A chart's help under it (plots.chartHelp): its mechanism family and one sentence per
 * metric, folded so the plots stay in view; null when the chart has none.
 * @param {{group?: Api.Chart["group"], lines: Pick<Api.MetricEntry, "title" | "help" | "paper">[]}
 *   | null | undefined} help */
export function chartHelpBlock(help) {
  if (!help) return null;
  const summary = help.group
    ? `Mechanism: ${help.group} — what these lines mean`
    : "What these lines mean";
  return el(
    "details",
    { class: "chart-help muted small" },
    el("summary", {}, summary),
    el(
      "ul",
      {},
      help.lines.map((line) =>
        el(
          "li",
          {},
          el("strong", {}, line.title),
          `: ${line.help}`,
          line.paper ? ` (${line.paper})` : "",
        ),
      ),
    ),
  );
}
