// Shared page chrome: navigation, health banner, API-token dialog, toasts, small helpers.

import { api, getApiToken, isReadOnly, setApiToken } from "./api.js";
import "./colours.js"; // sets the verdict colours the header's health dot and badges use

const HEALTH_POLL_MS = 10000;

/** document.createElement with attributes and children in one call. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show a transient message at the bottom of the screen. */
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

/** Copy text to the clipboard, falling back to a prompt where the API is unavailable. */
export async function copyText(text, what = "Link") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied to the clipboard`);
  } catch {
    window.prompt(`Copy this ${what.toLowerCase()}:`, text);
  }
}

/** Fill #app-header with the navigation bar; `active` is "runs" | "launch" | "compare". */
export function renderHeader(active) {
  const header = document.getElementById("app-header");
  const readOnly = isReadOnly();
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
export function openTokenDialog() {
  let dialog = document.getElementById("token-dialog");
  if (!dialog) {
    const input = el("input", {
      id: "token-input",
      type: "password",
      autocomplete: "off",
      "aria-describedby": "token-help",
    });
    dialog = el(
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
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "save") setApiToken(input.value.trim());
      if (dialog.returnValue === "clear") setApiToken("");
      const button = document.getElementById("token-button");
      if (button) button.textContent = tokenLabel();
    });
    document.body.append(dialog);
  }
  dialog.querySelector("input").value = getApiToken();
  dialog.showModal();
}

/** Explain a failed write: 401/403 means the token is missing or wrong. */
export function reportWriteError(error, action) {
  if (error && (error.status === 401 || error.status === 403)) {
    toast(`${action} refused: this server protects writes with an API token.`, "error");
    if (!isReadOnly()) openTokenDialog();
    return;
  }
  toast(`${action} failed: ${error.message || error}`, "error");
}

/** Human sentences for the parts /api/health (backend/schemas.py Health) reports as down. */
export function healthProblems(health) {
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

/** Replace a container's content with a state message (loading / empty / error). */
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
 * The "Diagnostics of:" radio group of the run and compare pages: projector output z or
 * backbone representation h. `onChange(which)` runs when the reader picks the other one.
 */
export function representationPicker(current, onChange) {
  return el(
    "div",
    { class: "view-controls", role: "radiogroup", "aria-label": "representation" },
    el("span", { class: "muted" }, "Diagnostics of:"),
    ["projector", "backbone"].map((which) =>
      el(
        "label",
        { class: "radio" },
        el("input", {
          type: "radio",
          name: "rep",
          value: which,
          checked: current === which,
          onchange: () => onChange(which),
        }),
        which === "projector" ? " projector output z" : " backbone representation h",
      ),
    ),
  );
}

/** "3 min ago" style time. */
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
  get(key, fallback = null) {
    const value = new URLSearchParams(window.location.search).get(key);
    return value === null ? fallback : value;
  },
  set(updates) {
    const params = new URLSearchParams(window.location.search);
    for (const [key, value] of Object.entries(updates)) {
      if (value === null || value === undefined || value === "") params.delete(key);
      else params.set(key, String(value));
    }
    const query = params.toString();
    window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
  },
};

/** Format a number for tables: 3 significant digits, dash for missing. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return Number(value.toPrecision(digits)).toString();
}

/** A two-column table of [label, value] rows (values formatted with fmt). */
export function keyValueTable(rows, attributes = {}) {
  return el(
    "table",
    { class: "config-table", ...attributes },
    el(
      "tbody",
      {},
      rows.map(([key, value]) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, key),
          el(
            "td",
            {},
            typeof value === "object" && value !== null ? JSON.stringify(value) : fmt(value, 6),
          ),
        ),
      ),
    ),
  );
}

/** A chart's help under it (plots.chartHelp): its mechanism family and one sentence per
 * metric, folded so the plots stay in view; null when the chart has none. */
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
