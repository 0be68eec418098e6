// Server-Sent Events with resume: the browser's EventSource sends Last-Event-ID on reconnect,
// and we drop any durable event id we have already handled so nothing is applied twice.
// The event types are the server's (backend/events.py): durable `epoch`, `status` and
// `projection` events carry a numeric id; live-only `progress` events carry none.

import { withShare } from "./api.js";

const EVENT_TYPES = ["epoch", "status", "projection", "progress"];

/**
 * Subscribe to an event stream.
 * @param {string} url  stream URL, e.g. `/api/runs/{id}/events`
 * @param {Record<string, (data: any, event: MessageEvent) => void>} handlers  by event type;
 *        `open`/`lost` are connection-state callbacks.
 * @returns {{close: () => void}}
 */
export function subscribe(url, handlers) {
  let lastId = -Infinity;
  const source = new EventSource(withShare(url));

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
