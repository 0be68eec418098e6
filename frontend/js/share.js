// @ts-check
// Share bar: copy the page link, create / revoke read-only share links (`/s/{token}`),
// download the self-contained report and export the per-epoch records.

import { api, isReadOnly } from "./api.js";
import { copyText, el, reportWriteError, toast } from "./ui.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** @param {Api.ShareOut} share */
function shareUrl(share) {
  if (share.url) return new URL(share.url, window.location.origin).href;
  return `${window.location.origin}/s/${encodeURIComponent(share.token)}`;
}

/**
 * @param {{
 *   runIds: string[],
 *   what: string,
 *   links: {label: string, href: string, download?: boolean}[],
 *   create?: () => Promise<Api.ShareOut>,
 * }} options
 *        what: "run" | "comparison" | "sweep" (for the button labels); create: how a share
 *        link is made (default: a link to runIds)
 */
export function shareBar({ runIds, what, links, create = () => api.createShare(runIds) }) {
  const readOnly = isReadOnly();
  const list = el("div", { class: "share-list", "aria-live": "polite" });
  const bar = el(
    "div",
    { class: "share-bar", role: "group", "aria-label": `share this ${what}` },
    el(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "copy-link",
        onclick: () => copyText(window.location.href, "Link"),
      },
      `Copy link`,
    ),
    readOnly
      ? null
      : el(
          "button",
          {
            type: "button",
            class: "secondary",
            id: "create-share",
            onclick: () => createShare(create, list),
          },
          "Read-only share link",
        ),
    links.map((link) =>
      el(
        "a",
        {
          class: "button secondary",
          href: link.href,
          download: link.download ? "" : null,
          target: link.download ? null : "_blank",
          rel: "noopener",
        },
        link.label,
      ),
    ),
  );
  return el("div", { class: "share-box" }, bar, list);
}

/** @param {Api.ShareOut} share @param {HTMLElement} list */
function shareRow(share, list) {
  const url = shareUrl(share);
  const input = el("input", {
    type: "text",
    readonly: true,
    value: url,
    class: "share-url",
    "aria-label": "read-only share link",
  });
  const row = el(
    "div",
    { class: "share-row", "data-token": share.token },
    input,
    el(
      "button",
      { type: "button", class: "secondary", onclick: () => copyText(url, "Share link") },
      "Copy",
    ),
    el(
      "button",
      {
        type: "button",
        class: "danger",
        onclick: async () => {
          try {
            await api.revokeShare(share.token);
            row.remove();
            toast("Share link revoked: it no longer opens anything.");
          } catch (error) {
            reportWriteError(error, "Revoking the link");
          }
        },
      },
      "Revoke",
    ),
  );
  list.append(row);
  input.select();
}

/** @param {() => Promise<Api.ShareOut>} create @param {HTMLElement} list */
async function createShare(create, list) {
  try {
    const share = await create();
    shareRow(share, list);
    await copyText(shareUrl(share), "Read-only share link");
  } catch (error) {
    reportWriteError(error, "Creating a share link");
  }
}
