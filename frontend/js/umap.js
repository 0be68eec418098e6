// UMAP views: a WebGL scatter per run that fetches each epoch's projection once and re-renders
// with Plotly.react, and an epoch slider with play that can drive several views at once.
// Optionally a probe panel: clicking a point (or typing its index) shows that probe image.

import { api, probeImageUrl } from "./api.js";
import { draw, normaliseProjection, projectionRange, umapFigure } from "./plots.js";
import { el } from "./ui.js";

const PLAY_INTERVAL_MS = 800;

/** One run's UMAP scatter. Frames are cached; the axis range only ever grows so it stays put. */
export class UmapView {
  constructor(container, runId, { title = "UMAP of the probe embeddings", probePanel = false } = {}) {
    this.runId = runId;
    this.title = title;
    this.frames = new Map(); // epoch -> normalised projection
    this.pending = new Map(); // epoch -> Promise
    this.range = null;
    this.shown = null;
    this.plot = el("div", { class: "plot umap-plot", "data-run-id": runId });
    this.empty = el("div", { class: "state state-empty umap-empty" }, "No projection yet: the first one appears after epoch 0 has been embedded.");
    container.append(this.empty, this.plot);
    this.plot.hidden = true;
    this.probe = probePanel ? new ProbePanel(container, runId) : null;
  }

  /** Store a frame pushed by the event stream (when the event carries the points). */
  addFrame(epoch, payload) {
    const frame = normaliseProjection(payload);
    if (frame) this.frames.set(epoch, frame);
  }

  async load(epoch) {
    if (this.frames.has(epoch)) return this.frames.get(epoch);
    if (!this.pending.has(epoch)) {
      this.pending.set(
        epoch,
        api.projection(this.runId, epoch).then(
          (payload) => {
            const frame = normaliseProjection(payload);
            this.frames.set(epoch, frame);
            this.pending.delete(epoch);
            return frame;
          },
          (error) => {
            this.pending.delete(epoch); // not there yet: a later call may find it
            throw error;
          },
        ),
      );
    }
    return this.pending.get(epoch);
  }

  growRange(frame) {
    const range = projectionRange(frame);
    if (!this.range) this.range = range;
    else {
      this.range = {
        x: [Math.min(this.range.x[0], range.x[0]), Math.max(this.range.x[1], range.x[1])],
        y: [Math.min(this.range.y[0], range.y[0]), Math.max(this.range.y[1], range.y[1])],
      };
    }
  }

  async show(epoch) {
    if (epoch === null || epoch === undefined) return;
    this.requested = epoch;
    let frame;
    try {
      frame = await this.load(epoch);
    } catch (error) {
      if (this.requested !== epoch) return;
      this.empty.textContent = error.status === 404 ? `No projection for epoch ${epoch} (yet).` : `Could not load the projection of epoch ${epoch}: ${error.message}`;
      this.empty.hidden = false;
      this.plot.hidden = true;
      return;
    }
    if (!frame || this.requested !== epoch) return; // a later request superseded this one
    this.growRange(frame);
    this.shown = epoch;
    this.empty.hidden = true;
    this.plot.hidden = false;
    this.plot.dataset.epoch = String(epoch);
    await draw(this.plot, umapFigure(frame, { title: `${this.title} · epoch ${epoch}`, range: this.range }));
    if (this.probe) {
      this.probe.setFrame(frame);
      if (!this.clickBound && this.plot.on) {
        // customdata is the probe index (see umapFigure); the trace name is the label's name
        this.plot.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          if (point && point.customdata !== undefined) this.probe.show(Number(point.customdata));
        });
        this.clickBound = true;
      }
    }
  }
}

/** Thumbnail of one probe image, picked by clicking a UMAP point or by typing its index. */
export class ProbePanel {
  constructor(container, runId) {
    this.runId = runId;
    this.frame = null;
    const id = `probe-index-${Math.random().toString(36).slice(2, 8)}`;
    this.input = el("input", { type: "number", id, min: 0, step: 1, class: "probe-index-input", inputmode: "numeric" });
    this.image = el("img", { class: "probe-thumb", alt: "" });
    this.caption = el("figcaption", { class: "probe-caption" });
    this.figure = el("figure", { class: "probe-figure", hidden: true }, this.image, this.caption);
    this.image.addEventListener("error", () => {
      this.caption.textContent = `Could not load probe image ${this.index} (the run's dataset may be unavailable here).`;
    });
    const picker = el(
      "form",
      { class: "probe-picker" },
      el("label", { for: id }, "Probe image #"),
      this.input,
      el("button", { type: "submit", class: "secondary" }, "Show"),
      el("span", { class: "muted small" }, "or click a point"),
    );
    picker.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.input.value !== "") this.show(Number(this.input.value));
    });
    container.append(el("div", { class: "probe-panel", "aria-live": "polite" }, picker, this.figure));
  }

  /** The frame on screen: it bounds the index input and names each point's label. */
  setFrame(frame) {
    this.frame = frame;
    this.input.max = String(frame.x.length - 1);
  }

  labelName(index) {
    const position = this.frame ? this.frame.indices.indexOf(index) : -1;
    if (position < 0) return null;
    const label = this.frame.labels[position];
    const names = this.frame.classNames;
    return names && names[label] !== undefined ? String(names[label]) : String(label);
  }

  show(index) {
    if (!Number.isInteger(index) || index < 0) return;
    this.index = index;
    this.input.value = String(index);
    const label = this.labelName(index);
    const text = label === null ? `Probe image ${index}` : `Probe image ${index}, label ${label}`;
    this.image.alt = text;
    this.image.src = probeImageUrl(this.runId, index);
    this.caption.textContent = text;
    this.figure.dataset.index = String(index);
    this.figure.hidden = false;
  }
}

/**
 * Slider over the epochs that have a projection, with a play button.
 * `onChange(epoch)` is called whenever the user (or play) moves it.
 */
export class EpochSlider {
  constructor(container, { onChange, initialEpoch = null, label = "Projection epoch" }) {
    this.epochs = [];
    this.onChange = onChange;
    this.wanted = initialEpoch;
    this.follow = initialEpoch === null; // follow the newest epoch until the user moves it
    this.timer = null;
    const id = `epoch-slider-${Math.random().toString(36).slice(2, 8)}`;
    this.input = el("input", { type: "range", id, min: 0, max: 0, step: 1, value: 0, disabled: true, class: "epoch-slider", "aria-valuetext": "no epochs" });
    this.output = el("output", { for: id, class: "epoch-output" }, "–");
    this.play = el("button", { type: "button", class: "secondary play-button", disabled: true, "aria-label": "play through the epochs" }, "▶ Play");
    this.input.addEventListener("input", () => {
      this.follow = Number(this.input.value) === this.epochs.length - 1;
      this.select(Number(this.input.value));
    });
    this.play.addEventListener("click", () => (this.timer ? this.stop() : this.start()));
    container.append(el("div", { class: "slider-row" }, el("label", { for: id }, label), this.input, this.output, this.play));
  }

  /** Register an epoch that now has a projection. */
  add(epoch) {
    if (this.epochs.includes(epoch)) return;
    this.epochs.push(epoch);
    this.epochs.sort((a, b) => a - b);
    this.input.max = String(this.epochs.length - 1);
    this.input.disabled = this.epochs.length < 1;
    this.play.disabled = this.epochs.length < 2;
    if (this.wanted !== null && this.epochs.includes(this.wanted)) {
      const wanted = this.wanted;
      this.wanted = null;
      this.select(this.epochs.indexOf(wanted));
    } else if (this.follow && !this.timer) {
      this.select(this.epochs.length - 1);
    } else {
      this.input.value = String(this.epochs.indexOf(this.current));
    }
  }

  select(index) {
    const epoch = this.epochs[index];
    if (epoch === undefined) return;
    this.current = epoch;
    this.input.value = String(index);
    this.input.setAttribute("aria-valuetext", `epoch ${epoch}`);
    this.output.textContent = `epoch ${epoch}`;
    this.onChange(epoch);
  }

  start() {
    if (this.epochs.length < 2) return;
    this.play.textContent = "⏸ Pause";
    let index = this.epochs.indexOf(this.current);
    if (index < 0 || index >= this.epochs.length - 1) index = -1;
    this.timer = setInterval(() => {
      index += 1;
      if (index >= this.epochs.length) {
        this.stop();
        return;
      }
      this.select(index);
    }, PLAY_INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.play.textContent = "▶ Play";
    this.follow = this.epochs.indexOf(this.current) === this.epochs.length - 1;
  }
}
