// @ts-check
// Thin client for the Collapse Lab HTTP API (see docs/design.md and /openapi.json).
// Every page goes through these helpers so auth, share mode and error shapes live in one place.
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

const TOKEN_KEY = "collapse-lab.api-token";

/** Share token when the page was opened from a read-only link `/s/{token}`, else null. */
export function shareToken() {
  const match = window.location.pathname.match(/^\/s\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

/** True on a share page: every write control is hidden and no credential is ever sent. */
export function isReadOnly() {
  return shareToken() !== null;
}

export function getApiToken() {
  return isReadOnly() ? "" : window.localStorage.getItem(TOKEN_KEY) || "";
}

/** The token cookie's name: cookies ignore ports, so the port is part of the name (another
 * app on this host never receives it). The server reads the same name (backend/auth.py,
 * TOKEN_COOKIE_PREFIX and token_cookie_name). */
function tokenCookie() {
  const port = window.location.port || (window.location.protocol === "https:" ? "443" : "80");
  return `collapse_lab_token_${port}`;
}

/** Keep the token in this browser; the cookie lets EventSource streams carry it too.
 * @param {string} token */
export function setApiToken(token) {
  if (token) {
    window.localStorage.setItem(TOKEN_KEY, token);
    document.cookie = `${tokenCookie()}=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
  } else {
    window.localStorage.removeItem(TOKEN_KEY);
    document.cookie = `${tokenCookie()}=; path=/; max-age=0; SameSite=Strict`;
  }
}

/** Error carrying the HTTP status and the parsed body (FastAPI's `detail`). */
export class ApiError extends Error {
  /** @param {number} status @param {any} body @param {string} message */
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }

  /** Field errors as [{field: "epochs" | "options.stop_gradient" | "", message}]. */
  fieldErrors() {
    return fieldErrorsFromDetail(this.body && this.body.detail);
  }
}

/** Whether an error says the server does not have what was asked (404: a revoked share link
 * is unknown to it too). @param {unknown} error @returns {boolean} */
export function isMissing(error) {
  return error instanceof ApiError && error.status === 404;
}

/** What a page says when its share link is missing (isMissing). */
export const SHARE_MISSING = "This share link is unknown or has been revoked.";

/** Error bodies as field + message pairs: `detail` is a sentence (ErrorResponse) or a
 * list of {loc, msg, type} (HTTPValidationError, 422).
 * @param {string | Api.ValidationError[] | null | undefined} detail
 * @returns {{field: string, message: string}[]} */
function fieldErrorsFromDetail(detail) {
  if (!detail) return [];
  if (typeof detail === "string") return [{ field: "", message: detail }];
  return detail.map((item) => ({
    field: item.loc
      .filter((part, i) => !(i === 0 && (part === "body" || part === "query")))
      .filter((part) => typeof part === "string")
      .join("."),
    message: item.msg,
  }));
}

/** @param {number} status @param {any} body */
function describeError(status, body) {
  const errors = fieldErrorsFromDetail(body && body.detail);
  if (errors.length) {
    return errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
  }
  return `HTTP ${status}`;
}

/** Add the share token to an API URL so private deployments accept share-page reads.
 * @param {string} url */
export function withShare(url) {
  const token = shareToken();
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "share=" + encodeURIComponent(token);
}

/** fetch + JSON with auth header, share token and typed errors.
 * @param {string} method
 * @param {string} url
 * @param {unknown} [body]
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<any>} the parsed body (each method of `api` says of which type) */
export async function request(method, url, body, { signal } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  const token = getApiToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const share = shareToken();
  if (share) headers["X-Share-Token"] = share;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 300) };
    }
  }
  if (!response.ok)
    throw new ApiError(response.status, parsed, describeError(response.status, parsed));
  return parsed;
}

export const api = {
  /** @returns {Promise<Api.Health>} */
  health: () => request("GET", "/api/health"),
  /** @returns {Promise<Api.Catalogue>} */
  methods: () => request("GET", "/api/methods"),
  /** @returns {Promise<Api.MetricCatalogue>} */
  metrics: () => request("GET", "/api/metrics"),
  /** @param {Api.operations["list_runs_api_runs_get"]["parameters"]["query"]} params
   * @returns {Promise<Api.RunList>} */
  listRuns: (params = {}) => {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (Array.isArray(value)) for (const item of value) query.append(key, item);
      else if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const suffix = query.toString() ? `?${query}` : "";
    return request("GET", withShare(`/api/runs${suffix}`));
  },
  /** @param {string} id @returns {Promise<Api.RunDetail>} */
  getRun: (id) => request("GET", withShare(`/api/runs/${encodeURIComponent(id)}`)),
  /** @param {string} id @returns {Promise<Api.EpochRecord[]>} */
  epochs: (id) => request("GET", withShare(`/api/runs/${encodeURIComponent(id)}/epochs`)),
  /** @param {string} id @param {number} epoch @returns {Promise<Api.ProjectionPoints>} */
  projection: (id, epoch) =>
    request("GET", withShare(`/api/runs/${encodeURIComponent(id)}/projections/${epoch}`)),
  /** @param {Api.SweepRequest["base"]} config @returns {Promise<Api.RunDetail>} */
  launch: (config) => request("POST", "/api/runs", config),
  /** @param {string} id @returns {Promise<Api.RunDetail>} */
  cancel: (id) => request("POST", `/api/runs/${encodeURIComponent(id)}/cancel`),
  /** @param {string} id @param {Api.LabelsEdit} edit @returns {Promise<Api.RunDetail>} */
  editLabels: (id, edit) => request("PATCH", `/api/runs/${encodeURIComponent(id)}/labels`, edit),
  /** @param {string} token @returns {Promise<Api.ShareOut>} */
  share: (token) => request("GET", `/api/shares/${encodeURIComponent(token)}`),
  /** @param {string[]} runIds @returns {Promise<Api.ShareOut>} */
  createShare: (runIds) => request("POST", "/api/shares", { runs: runIds }),
  /** @param {Api.ZooRequest["overrides"]} overrides @returns {Promise<Api.ZooResult>} */
  zoo: (overrides) => request("POST", "/api/zoo", { overrides }),
  /** @param {string} id @returns {Promise<Api.ProjectionEpochs>} */
  projectionEpochs: (id) =>
    request("GET", withShare(`/api/runs/${encodeURIComponent(id)}/projections`)),
  /** @param {string} token @returns {Promise<null>} */
  revokeShare: (token) => request("DELETE", `/api/shares/${encodeURIComponent(token)}`),
  /** @param {string} id @returns {Promise<Api.SweepDetail>} */
  getSweep: (id) => request("GET", withShare(`/api/sweeps/${encodeURIComponent(id)}`)),
  /** @param {Api.SweepRequest} body @returns {Promise<Api.SweepCreated>} */
  launchSweep: (body) => request("POST", "/api/sweeps", body),
  /** @param {Api.SweepRequest} body @returns {Promise<Api.SweepPreview>} */
  previewSweep: (body) => request("POST", "/api/sweeps/preview", body),
  /** @param {string} id @returns {Promise<Api.SweepDetail>} */
  cancelSweep: (id) => request("POST", `/api/sweeps/${encodeURIComponent(id)}/cancel`),
  /** @param {string} id @returns {Promise<Api.ShareOut>} */
  shareSweep: (id) => request("POST", `/api/sweeps/${encodeURIComponent(id)}/share`),
};

/** Export links of a sweep's cells (one row per run).
 * @param {string} id */
export function sweepLinks(id) {
  const base = `/api/sweeps/${encodeURIComponent(id)}`;
  return {
    report: withShare(`${base}/report.html`),
    csv: withShare(`${base}/cells.csv`),
    json: withShare(`${base}/cells.json`),
  };
}

/** Download/export links for one run.
 * @param {string} id */
export function runLinks(id) {
  const base = `/api/runs/${encodeURIComponent(id)}`;
  return {
    report: withShare(`${base}/report.html`),
    csv: withShare(`${base}/epochs.csv`),
    json: withShare(`${base}/epochs.json`),
  };
}

/** URL of probe image `index` (the index of a UMAP point) as an upscaled PNG; an <img> sends
 * the token cookie itself, and the share token rides in the query on share pages.
 * @param {string} id @param {number} index */
export function probeImageUrl(id, index) {
  return withShare(`/api/runs/${encodeURIComponent(id)}/probe/${index}.png`);
}

/** Report and export links for a comparison of several runs.
 * @param {string[]} ids */
export function compareLinks(ids) {
  const runs = ids.map(encodeURIComponent).join(",");
  return {
    report: withShare(`/api/compare/report.html?runs=${runs}`),
    csv: withShare(`/api/compare/epochs.csv?runs=${runs}`),
    json: withShare(`/api/compare/epochs.json?runs=${runs}`),
  };
}

/** The list payload is `{"data": [...], "count": n}`; tolerate a bare list too.
 * @template T
 * @param {{data: T[]} | T[] | null | undefined} payload
 * @returns {T[]} */
export function listData(payload) {
  if (Array.isArray(payload)) return payload;
  return (payload && payload.data) || [];
}
