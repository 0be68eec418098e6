// @ts-check
// Tiny inline-SVG sparkline (no Plotly): dozens of them render instantly in the runs table.

const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {number[]} values   effective rank per epoch
 * @param {{max?: number | null, color?: string, width?: number, height?: number}} options
 *        max: the healthy ceiling (d); drawn as a dashed line at the top.
 * @returns {SVGSVGElement}
 */
export function sparkline(
  values,
  { max = null, color = "#374151", width = 110, height = 28 } = {},
) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "sparkline");
  const last = values[values.length - 1]; // read only when there are values
  svg.setAttribute("role", "img");
  svg.setAttribute(
    "aria-label",
    values.length
      ? `effective rank over ${values.length} epochs, last ${last.toFixed(1)}`
      : "no epochs yet",
  );
  if (!values.length) return svg;
  const top = Math.max(max || 0, ...values, 1);
  const pad = 2;
  /** @param {number} i */
  const x = (i) => pad + (values.length === 1 ? 0 : (i / (values.length - 1)) * (width - 2 * pad));
  /** @param {number} v */
  const y = (v) => height - pad - (Math.max(0, v) / top) * (height - 2 * pad);
  if (max) {
    const ref = document.createElementNS(SVG, "line");
    ref.setAttribute("x1", "0");
    ref.setAttribute("x2", String(width));
    ref.setAttribute("y1", String(y(max)));
    ref.setAttribute("y2", String(y(max)));
    ref.setAttribute("class", "sparkline-ref");
    svg.append(ref);
  }
  const path = document.createElementNS(SVG, "polyline");
  path.setAttribute(
    "points",
    values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
  );
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", color);
  path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  const dot = document.createElementNS(SVG, "circle");
  dot.setAttribute("cx", String(x(values.length - 1)));
  dot.setAttribute("cy", String(y(last)));
  dot.setAttribute("r", "2.5");
  dot.setAttribute("fill", color);
  svg.append(dot);
  return svg;
}
