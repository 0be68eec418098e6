// @ts-check
// JSON Schema -> labelled, keyboard-usable form fields, and back to typed values.
// Covers what pydantic emits for run configs: booleans, integers, numbers with bounds,
// enums / Literals, optional (anyOf with null) values and plain strings.

import { el } from "./ui.js";

/** What the fields read of a JSON Schema (pydantic's, in the API's config_schema and
 * options_schema: objects the OpenAPI document does not detail).
 * @typedef {{
 *   type?: string | string[], title?: string, description?: string, default?: unknown,
 *   enum?: unknown[], const?: unknown, $ref?: string, anyOf?: JsonSchema[], oneOf?: JsonSchema[],
 *   minimum?: number, maximum?: number, exclusiveMinimum?: number, exclusiveMaximum?: number,
 *   properties?: Record<string, JsonSchema>, $defs?: Record<string, JsonSchema>,
 * }} JsonSchema */
/** A property's schema once unwrapped: one type name.
 * @typedef {Omit<JsonSchema, "type"> & {type?: string}} FieldSchema */
/** A field's input (fieldFor makes an input or a select).
 * @typedef {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} FieldInput */

/** Resolve `anyOf: [X, {type: "null"}]` to X and note that the field may be empty.
 * @param {JsonSchema | null | undefined} prop
 * @param {Record<string, JsonSchema>} [definitions] the $defs its $ref points into
 * @returns {{schema: FieldSchema, nullable: boolean}} */
function unwrapSchema(prop, definitions = {}) {
  let schema = prop || {};
  if (schema.$ref) {
    const name = schema.$ref.slice(schema.$ref.lastIndexOf("/") + 1);
    schema = { ...definitions[name], ...schema, $ref: undefined };
  }
  let nullable = false;
  const variants = schema.anyOf || schema.oneOf;
  if (Array.isArray(variants)) {
    const nonNull = variants.filter((v) => v.type !== "null");
    nullable = nonNull.length < variants.length;
    if (nonNull.length === 1)
      schema = { ...nonNull[0], ...schema, anyOf: undefined, oneOf: undefined };
  }
  if (Array.isArray(schema.type)) {
    nullable = nullable || schema.type.includes("null");
    schema = { ...schema, type: schema.type.find((t) => t !== "null") };
  }
  if (schema.const !== undefined && !schema.enum) schema = { ...schema, enum: [schema.const] };
  if (schema.enum && !schema.type)
    schema = { ...schema, type: typeof schema.enum[0] === "number" ? "number" : "string" };
  return { schema: /** @type {FieldSchema} */ (schema), nullable }; // one type name now
}

/** Label text from a field name: "proj_hidden_dim" -> "Proj hidden dim".
 * @param {string} name */
function humanise(name) {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** @param {FieldSchema} schema */
function describeBounds(schema) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
  return parts.join(", ");
}

/** @param {unknown} value */
function formatDefault(value) {
  if (value === null || value === undefined) return "none";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * One form field.
 * @param {string} path        value path, e.g. "epochs" or "options.stop_gradient" (used as name)
 * @param {JsonSchema | null | undefined} prop  JSON Schema of the property
 * @param {unknown} defaultValue  the effective default (method / preset aware), shown in the help
 * @param {Record<string, JsonSchema>} [definitions]  $defs the schema's $refs point into
 * @returns {HTMLElement}      <div class="field" data-field=path> with label, input, help, error
 */
export function fieldFor(path, prop, defaultValue, definitions = {}) {
  const { schema, nullable } = unwrapSchema(prop, definitions);
  const id = `field-${path.replace(/\./g, "-")}`;
  const helpId = `${id}-help`;
  const errorId = `${id}-error`;
  const name = path.slice(path.lastIndexOf(".") + 1);
  const label = schema.title || humanise(name);
  /** @type {FieldInput} */
  let input;
  const common = {
    id,
    name: path,
    "aria-describedby": `${helpId} ${errorId}`,
    "data-type": schema.type,
    "data-nullable": nullable ? "1" : null,
  };
  if (schema.type === "boolean") {
    input = el("input", { ...common, type: "checkbox" });
  } else if (schema.enum) {
    input = el(
      "select",
      common,
      nullable ? el("option", { value: "" }, "none") : null,
      schema.enum.map((value) => el("option", { value: String(value) }, String(value))),
    );
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", {
      ...common,
      type: "number",
      inputmode: schema.type === "integer" ? "numeric" : "decimal",
      step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum ?? null,
      max: schema.maximum ?? null,
      placeholder: nullable ? "none" : null,
    });
  } else {
    input = el("input", { ...common, type: "text", placeholder: nullable ? "none" : null });
  }
  const bounds = describeBounds(schema);
  const help = [
    schema.description,
    bounds ? `(${bounds})` : "",
    `default: ${formatDefault(defaultValue)}`,
  ]
    .filter(Boolean)
    .join(" ");
  const field = el(
    "div",
    { class: `field${schema.type === "boolean" ? " checkbox" : ""}`, "data-field": path },
    schema.type === "boolean" ? null : el("label", { for: id }, label),
    schema.type === "boolean"
      ? el("label", { for: id, class: "checkbox-label" }, input, " ", label)
      : input,
    el("div", { id: helpId, class: "help" }, help),
    el("div", { id: errorId, class: "error", role: "alert" }),
  );
  setFieldValue(field, defaultValue);
  return field;
}

/** The input of a field of fieldFor's (each has one).
 * @param {Element} field @returns {FieldInput} */
function inputOf(field) {
  return /** @type {FieldInput} */ (field.querySelector("input, select, textarea"));
}

/** @param {Element} field @param {unknown} value */
export function setFieldValue(field, value) {
  const input = inputOf(field);
  if (input instanceof HTMLInputElement && input.type === "checkbox")
    input.checked = Boolean(value);
  else input.value = value === null || value === undefined ? "" : String(value);
}

/** Typed value of a field (number for numeric inputs, null for an empty optional one).
 * @param {Element} field
 * @returns {boolean | number | string | null | undefined} */
export function fieldValue(field) {
  const input = inputOf(field);
  if (input instanceof HTMLInputElement && input.type === "checkbox") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return input.dataset.nullable ? null : undefined;
  const type = input.dataset.type;
  if (type === "integer" || type === "number") {
    const number = Number(raw);
    return Number.isFinite(number) ? number : raw;
  }
  return raw;
}

/** @param {Element} field @param {string | null | undefined} message */
export function setFieldError(field, message) {
  const error = /** @type {Element} */ (field.querySelector(".error")); // fieldFor's
  const input = inputOf(field);
  error.textContent = message || "";
  field.classList.toggle("invalid", Boolean(message));
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}
