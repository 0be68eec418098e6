// @ts-check
// Server-Sent Events with resume: the browser's EventSource sends Last-Event-ID on reconnect,
// and we drop any durable event id we have already handled so nothing is applied twice.
// The event types are the server's (backend/events.py): durable `epoch`, `status` and
// `projection` events carry a numeric id; live-only `progress` events carry none.

import { withShare } from "./api.js";

/** @typedef {"epoch" | "status" | "projection" | "progress"} EventType */
/** @type {EventType[]} */
const EVENT_TYPES = ["epoch", "status", "projection", "progress"];

/** An event's handler: `data` is the event's parsed JSON, whose fields backend/events.py says
 * (they are not in the OpenAPI document).
 * @typedef {(data: any, event: MessageEvent) => void} EventHandler */
/** The handlers by event type, and the connection-state callbacks `open` and `lost` (`closed`:
 * the browser gave up reconnecting).
 * @typedef {Partial<Record<EventType, EventHandler>> & {
 *   open?: () => void, lost?: (closed: boolean) => void }} Handlers */

/**
 * Subscribe to an event stream.
 * @param {string} url  stream URL, e.g. `/api/runs/{id}/events`
 * @param {Handlers} handlers  by event type; `open`/`lost` are connection-state callbacks.
 * @returns {{close: () => void}}
 */
export function subscribe(url, handlers) {
  let lastId = -Infinity;
  const source = new EventSource(withShare(url));

  /** @type {(type: EventType) => (event: MessageEvent) => void} */
  const dispatch = (type) => (event) => {
    // EventSource repeats the previous id on events without one (progress): only durable
    // events move the resume point.
    if (type !== "progress" && event.lastEventId) {
      const id = Number(event.lastEventId);
      if (id <= lastId) return;
      lastId = id;
    }
    const handler = handlers[type];
    if (handler) handler(JSON.parse(event.data), event);
  };

  for (const type of EVENT_TYPES) source.addEventListener(type, dispatch(type));
  source.onopen = () => handlers.open && handlers.open();
  source.onerror = () => {
    if (handlers.lost) handlers.lost(source.readyState === EventSource.CLOSED);
  };
  return {
    close: () => source.close(),
  };
}
