// @ts-check
// Embedding pictures: a WebGL scatter per run that fetches each epoch's projection once and
// re-renders with Plotly.react, and an epoch slider with play that can drive several views at
// once. The axes never follow one epoch's points: every view draws at the scale of all the
// frames it (and the views sharing its ProjectionScale) has loaded, so a collapsing run's cloud
// shrinks on screen. Optionally a probe panel: clicking a point (or typing its index) shows
// that probe image.

import { api, probeImageUrl } from "./api.js";
import { FINISHED } from "./model.js";
import { draw, projectionFrame, projectionRange, umapFigure, unionRange } from "./plots.js";
import { el } from "./ui.js";
/** @import * as Api from "api-types" (the API's models: frontend/js/types/api.d.ts) */

/** A projection as columns (plots.projectionFrame): probe i at (x[i], y[i]), its class labels[i].
 * @typedef {{epoch: number, x: number[], y: number[], labels: Api.ProjectionPoints["labels"]}}
 *   Frame */
/** Axis ranges (plots.projectionRange): [low, high] of each axis.
 * @typedef {{x: number[], y: number[]}} Range */
/** The plot's div, with Plotly's `on` once Plotly has drawn into it.
 * @typedef {HTMLDivElement & {on?: (name: string, handler: (event: PlotlyClick) => void) => void}}
 *   PlotDiv */
/** The part of a plotly_click event read here: the point's customdata (its probe index).
 * @typedef {{points?: {customdata?: unknown}[]}} PlotlyClick */
/** What a view knows of its run (read when an epoch has no projection): its status and the
 * last epoch it measured.
 * @typedef {{status: Api.RunSummary["status"], last_epoch?: number | null}} RunState */

const PLAY_INTERVAL_MS = 800;
const BACKGROUND_LOADS = 2; // frames fetched at once for the scale, so the shown one is not queued

/** The axis ranges shared by one run's frames, or by several runs' pictures side by side:
 * they only grow, and every view using them redraws when they do. */
export class ProjectionScale {
  constructor() {
    /** @type {Range | null} */
    this.range = null;
    /** @type {Set<UmapView>} */
    this.views = new Set();
  }

  /** @param {Frame} frame */
  include(frame) {
    /** @type {Range} */
    const next = unionRange(this.range, projectionRange(frame));
    const range = this.range;
    const grew =
      !range ||
      /** @type {("x" | "y")[]} */ (["x", "y"]).some(
        (axis) => next[axis][0] !== range[axis][0] || next[axis][1] !== range[axis][1],
      );
    this.range = next;
    if (grew) for (const view of this.views) view.redraw();
  }
}

/** One run's embedding picture. Frames are cached; every frame the slider knows is fetched in
 * the background (the first epoch first: it is usually the widest) to fix the scale. */
export class UmapView {
  /**
   * @param {Element} container
   * @param {string} runId
   * @param {{title?: string, probePanel?: boolean, scale?: ProjectionScale,
   *   run?: () => RunState | null | undefined}} [options] `run`: the run as the page holds it
   *   now (a finished run's missing epoch is one it never reached, not one still to come)
   */
  constructor(
    container,
    runId,
    {
      title = "UMAP of the probe embeddings",
      probePanel = false,
      scale = new ProjectionScale(),
      run = () => null,
    } = {},
  ) {
    this.runId = runId;
    this.title = title;
    this.run = run;
    /** @type {Map<number, Frame>} */
    this.frames = new Map(); // epoch -> frame
    /** @type {Map<number, Promise<Frame>>} */
    this.pending = new Map(); // epoch -> Promise
    /** @type {number[]} */
    this.backlog = []; // epochs to fetch for the scale
    /** @type {Set<number>} */
    this.known = new Set(); // the epochs added: only these are fetched (any other is a 404)
    /** @type {number | undefined} */
    this.requested = undefined; // the epoch last asked for by show()
    this.loading = 0;
    this.scale = scale;
    scale.views.add(this);
    /** @type {number | null} */
    this.shown = null;
    /** @type {PlotDiv} */
    this.plot = el("div", { class: "plot umap-plot", "data-run-id": runId });
    this.empty = el(
      "div",
      { class: "state state-empty umap-empty" },
      "No projection yet: the first one appears after epoch 0 has been embedded.",
    );
    container.append(this.empty, this.plot);
    this.plot.hidden = true;
    this.probe = probePanel ? new ProbePanel(container, runId) : null;
  }

  /** An epoch now has a projection: fetch it in the background so it counts in the scale.
   * @param {number} epoch */
  add(epoch) {
    this.known.add(epoch);
    // show() asked for it before it was known (another run's epoch on a shared slider)
    if (this.requested === epoch && this.shown !== epoch) this.show(epoch);
    if (this.frames.has(epoch) || this.pending.has(epoch) || this.backlog.includes(epoch)) return;
    this.backlog.push(epoch);
    this.backlog.sort((a, b) => a - b);
    this.pump();
  }

  pump() {
    while (this.loading < BACKGROUND_LOADS && this.backlog.length) {
      const epoch = /** @type {number} */ (this.backlog.shift()); // there is one
      this.loading += 1;
      this.load(epoch)
        .catch(() => {}) // not there (yet): show() reports it when that epoch is asked for
        .finally(() => {
          this.loading -= 1;
          this.pump();
        });
    }
  }

  /** Resolves once every added epoch has been fetched, so the scale is final (before play). */
  async ready() {
    const epochs = [...this.backlog, ...this.pending.keys()];
    await Promise.allSettled(epochs.map((epoch) => this.load(epoch)));
  }

  /** @param {number} epoch @returns {Promise<Frame>} */
  async load(epoch) {
    const loaded = this.frames.get(epoch);
    if (loaded) return loaded;
    let pending = this.pending.get(epoch);
    if (!pending) {
      this.backlog = this.backlog.filter((e) => e !== epoch);
      pending = api.projection(this.runId, epoch).then(
        (payload) => {
          const frame = projectionFrame(payload);
          this.frames.set(epoch, frame);
          this.pending.delete(epoch);
          this.scale.include(frame);
          return frame;
        },
        (error) => {
          this.pending.delete(epoch); // not there yet: a later call may find it
          throw error;
        },
      );
      this.pending.set(epoch, pending);
    }
    return pending;
  }

  /** Redraw the frame on screen at the current scale. */
  redraw() {
    const frame = this.shown === null ? undefined : this.frames.get(this.shown);
    if (!frame || this.plot.hidden) return Promise.resolve();
    const title = `${this.title} · epoch ${this.shown}`;
    return draw(this.plot, umapFigure(frame, { title, range: this.scale.range }));
  }

  /** Why an epoch has no projection: still to come while the run is queued or running; a
   * finished run that stopped before it never reaches it.
   * @param {number} epoch */
  missingText(epoch) {
    const run = this.run();
    const last = run ? run.last_epoch : null;
    if (!run || !FINISHED.has(run.status) || (last != null && epoch <= last))
      return `No projection for epoch ${epoch} (yet).`;
    const ended = { succeeded: "ended", failed: "failed", cancelled: "was cancelled" }[
      /** @type {"succeeded" | "failed" | "cancelled"} */ (run.status) // one of FINISHED
    ];
    const when = last == null ? "before any epoch" : `at epoch ${last}`;
    return `No projection for epoch ${epoch}: the run ${ended} ${when}.`;
  }

  /** @param {number | null | undefined} epoch */
  async show(epoch) {
    if (epoch === null || epoch === undefined) return;
    this.requested = epoch;
    let frame;
    try {
      if (!this.known.has(epoch)) throw Object.assign(new Error("no projection"), { status: 404 });
      frame = await this.load(epoch);
    } catch (error) {
      if (this.requested !== epoch) return;
      // an ApiError, or the Error with a status 404 above
      const status = error instanceof Error && "status" in error ? error.status : undefined;
      const why = error instanceof Error ? error.message : error;
      this.empty.textContent =
        status === 404
          ? this.missingText(epoch)
          : `Could not load the projection of epoch ${epoch}: ${why}`;
      this.empty.hidden = false;
      this.plot.hidden = true;
      return;
    }
    if (this.requested !== epoch) return; // a later request superseded this one
    this.shown = epoch;
    this.empty.hidden = true;
    this.plot.hidden = false;
    this.plot.dataset.epoch = String(epoch);
    await this.redraw();
    const probe = this.probe;
    if (probe) {
      probe.setFrame(frame);
      if (!this.clickBound && this.plot.on) {
        // customdata is the probe index (see umapFigure)
        this.plot.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          if (point && point.customdata !== undefined) probe.show(Number(point.customdata));
        });
        this.clickBound = true;
      }
    }
  }
}

/** Thumbnail of one probe image, picked by clicking a UMAP point or by typing its index. */
class ProbePanel {
  /** @param {Element} container @param {string} runId */
  constructor(container, runId) {
    this.runId = runId;
    /** @type {Frame | null} */
    this.frame = null;
    const id = `probe-index-${Math.random().toString(36).slice(2, 8)}`;
    this.input = el("input", {
      type: "number",
      id,
      min: 0,
      step: 1,
      class: "probe-index-input",
      inputmode: "numeric",
    });
    this.image = el("img", { class: "probe-thumb", alt: "" });
    this.caption = el("figcaption", { class: "probe-caption" });
    this.figure = el("figure", { class: "probe-figure", hidden: true }, this.image, this.caption);
    this.image.addEventListener("error", () => {
      this.caption.textContent =
        `Could not load probe image ${this.index} ` +
        "(the run's dataset may be unavailable here).";
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
    container.append(
      el("div", { class: "probe-panel", "aria-live": "polite" }, picker, this.figure),
    );
  }

  /** The frame on screen: it bounds the index input and names each point's label.
   * @param {Frame} frame */
  setFrame(frame) {
    this.frame = frame;
    this.input.max = String(frame.x.length - 1);
  }

  /** @param {number} index */
  labelName(index) {
    const label = this.frame ? this.frame.labels[index] : undefined;
    return label === undefined ? null : String(label);
  }

  /** @param {number} index */
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
 * `onChange(epoch)` is called whenever the user (or play) moves it; play first awaits
 * `beforePlay()` (the views' frames, so the scale does not change during the animation).
 */
export class EpochSlider {
  /**
   * @param {Element} container
   * @param {{onChange: (epoch: number) => void, beforePlay?: () => Promise<unknown>,
   *   initialEpoch?: number | null, label?: string}} options
   */
  constructor(
    container,
    { onChange, beforePlay = async () => {}, initialEpoch = null, label = "Projection epoch" },
  ) {
    /** @type {number[]} */
    this.epochs = [];
    this.onChange = onChange;
    this.beforePlay = beforePlay;
    this.wanted = initialEpoch;
    this.follow = initialEpoch === null; // follow the newest epoch until the user moves it
    /** @type {ReturnType<typeof setInterval> | null} */
    this.timer = null;
    /** @type {number | undefined} the epoch selected */
    this.current = undefined;
    const id = `epoch-slider-${Math.random().toString(36).slice(2, 8)}`;
    this.input = el("input", {
      type: "range",
      id,
      min: 0,
      max: 0,
      step: 1,
      value: 0,
      disabled: true,
      class: "epoch-slider",
      "aria-valuetext": "no epochs",
    });
    this.output = el("output", { for: id, class: "epoch-output" }, "–");
    this.play = el(
      "button",
      {
        type: "button",
        class: "secondary play-button",
        disabled: true,
        "aria-label": "play through the epochs",
      },
      "▶ Play",
    );
    this.input.addEventListener("input", () => {
      this.follow = Number(this.input.value) === this.epochs.length - 1;
      this.select(Number(this.input.value));
    });
    this.play.addEventListener("click", () => (this.timer ? this.stop() : this.start()));
    container.append(
      el(
        "div",
        { class: "slider-row" },
        el("label", { for: id }, label),
        this.input,
        this.output,
        this.play,
      ),
    );
  }

  /** Register an epoch that now has a projection.
   * @param {number} epoch */
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
      this.input.value = String(this.currentIndex());
    }
  }

  /** The selected epoch's index, -1 before one is. */
  currentIndex() {
    return this.current === undefined ? -1 : this.epochs.indexOf(this.current);
  }

  /** @param {number} index */
  select(index) {
    const epoch = this.epochs[index];
    if (epoch === undefined) return;
    this.current = epoch;
    this.input.value = String(index);
    this.input.setAttribute("aria-valuetext", `epoch ${epoch}`);
    this.output.textContent = `epoch ${epoch}`;
    this.onChange(epoch);
  }

  async start() {
    if (this.epochs.length < 2 || this.timer) return;
    this.play.disabled = true;
    await this.beforePlay();
    this.play.disabled = false;
    this.play.textContent = "⏸ Pause";
    let index = this.currentIndex();
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
    clearInterval(this.timer ?? undefined);
    this.timer = null;
    this.play.textContent = "▶ Play";
    this.follow = this.currentIndex() === this.epochs.length - 1;
  }
}
