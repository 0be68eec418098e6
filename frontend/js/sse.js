// Server-Sent Events with resume: the browser's EventSource sends Last-Event-ID on reconnect,
// and we drop any durable event id we have already handled so nothing is applied twice.

import { withShare } from "./api.js";

const EVENT_TYPES = ["epoch", "status", "projection", "progress", "run", "verdict", "created", "deleted"];

/**
 * Subscribe to an event stream.
 * @param {string} url  stream URL, e.g. `/api/runs/{id}/events`
 * @param {Record<string, (data: any, event: MessageEvent) => void>} handlers  by event type;
 *        `message` gets unnamed events, `open`/`lost` are connection-state callbacks.
 * @returns {{close: () => void}}
 */
export function subscribe(url, handlers) {
  let lastId = null;
  let lastNumeric = -Infinity;
  const source = new EventSource(withShare(url));

  const dispatch = (type) => (event) => {
    // Live-only events (progress) carry no id; EventSource then repeats the previous id.
    if (event.lastEventId && type !== "progress") {
      const numeric = Number(event.lastEventId);
      if (Number.isFinite(numeric)) {
        if (numeric <= lastNumeric) return;
        lastNumeric = numeric;
      } else if (event.lastEventId === lastId) {
        return;
      }
      lastId = event.lastEventId;
    }
    let data = event.data;
    try {
      data = JSON.parse(event.data);
    } catch {
      // keep the raw string
    }
    const handler = handlers[type];
    if (handler) handler(data, event);
  };

  for (const type of EVENT_TYPES) source.addEventListener(type, dispatch(type));
  source.onmessage = dispatch("message");
  source.onopen = () => handlers.open && handlers.open();
  source.onerror = () => {
    if (handlers.lost) handlers.lost(source.readyState === EventSource.CLOSED);
  };
  return {
    close: () => source.close(),
  };
}
