"""The run request: what ``POST /api/runs``, a sweep's ``base`` and the command line accept.

A discriminated union with one model per method (``{"method": "simsiam", "epochs": 5,
"options": {"stop_gradient": false}}``): each has every :class:`RunConfig` field with that
method's defaults, its own options model and an optional ``preset`` of that method, whose
config is merged under the fields sent (``{"preset": "simsiam-no-stopgrad", "epochs": 30}``
needs no method: the preset names it). Pydantic validates it in one pass, so every error
carries its location: ``("simsiam", "epochs")`` is the field ``epochs`` of a SimSiam request
(the first part is the union member, the method). A body with no known method nor preset
fails at the root with :data:`UNKNOWN_METHOD`, after the name it gave when it gave one
(``unknown method 'x': choose ...``).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    TypeAdapter,
    create_model,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from contract.config import RunConfig, RunRules
from contract.labels import RunLabels
from contract.methods import METHOD_SPECS, MethodSpec
from contract.plugins import PLUGIN_ERRORS
from contract.presets import PRESETS
from contract.strict import shortened

# Set by the server when it builds the request, never sent: fields a request does not carry.
_OWN_FIELDS = ("method", "preset", "options")


class RunRequestBase(RunLabels, RunRules):
    """What every method's request shares: the run's labels (project, tags, note, alerts:
    kept with the run, not part of its config), the preset merge and the run's rules across
    fields (:class:`~contract.config.RunRules`)."""

    method_name: ClassVar[str]

    @model_validator(mode="wrap")
    @classmethod
    def _merge_preset(cls, data: Any, handler: ModelWrapValidatorHandler[RunRequestBase]) -> Any:
        """Validate the preset's config with the fields sent laid over it (options merged
        key by key); the model still records as set only what was sent."""
        name = data.get("preset") if isinstance(data, dict) else None
        preset = PRESETS.get(name) if isinstance(name, str) else None
        if preset is None or preset.config["method"] != cls.method_name:
            return handler(data)
        sent_options = data.get("options")
        merged = {**preset.config, **data}
        if sent_options is None or isinstance(sent_options, dict):
            merged["options"] = {**preset.config.get("options", {}), **(sent_options or {})}
        request = handler(merged)
        request.__pydantic_fields_set__ = set(data)
        if isinstance(sent_options, dict):
            request.options.__pydantic_fields_set__ = set(sent_options)  # type: ignore[attr-defined]
        return request


def _field(name: str, default: Any) -> FieldInfo:
    """RunConfig's field ``name`` (type, bounds, description) with the method's default."""
    info = copy.copy(RunConfig.model_fields[name])
    info.default = default
    return info


def _method_request(spec: MethodSpec) -> type[RunRequestBase]:
    fields: dict[str, Any] = {
        name: (
            RunConfig.model_fields[name].annotation,
            _field(name, spec.defaults.get(name, RunConfig.model_fields[name].default)),
        )
        for name in RunConfig.model_fields
        if name not in _OWN_FIELDS
    }
    presets = tuple(p.name for p in PRESETS.values() if p.config["method"] == spec.name)
    fields["method"] = (Literal[spec.name], Field(description=spec.title))
    fields["preset"] = (
        Literal[presets] | None if presets else None,
        Field(
            None,
            description="A preset of this method (GET /api/methods lists them): its config "
            "is merged under the fields sent, which need no method then.",
        ),
    )
    fields["options"] = (
        spec.options,
        Field(
            default_factory=dict,
            validate_default=True,  # {} -> the options' defaults
            description=f"{spec.title}'s options; unset ones default.",
        ),
    )
    model = create_model(
        spec.options.__name__.removesuffix("Options") + "RunRequest",
        __base__=RunRequestBase,
        __doc__=f"A {spec.title} run ({spec.paper}). Defaults shown are this method's.",
        **fields,
    )
    model.method_name = spec.name
    return model


def _method_of(data: Any) -> str | None:
    """The union member of a request: its method, or its preset's; None when neither is a
    known one (or the body is not an object)."""
    if isinstance(data, RunRequestBase):
        return data.method_name
    if not isinstance(data, dict):
        return None
    method = data.get("method")
    preset = data.get("preset")
    if method is None and isinstance(preset, str) and preset in PRESETS:
        method = PRESETS[preset].config["method"]
    return method if isinstance(method, str) and method in METHOD_SPECS else None


_KNOWN = f"a method ({', '.join(sorted(METHOD_SPECS))}) or a preset ({', '.join(PRESETS)})"
UNKNOWN_METHOD = f"give a JSON object with {_KNOWN}"
# the longest name an unknown-method error repeats (a 422 echoes back only short inputs)
_NAME_SHOWN = 60
# the longest plugin error it repeats (GET /api/methods has it whole)
_ERROR_SHOWN = 200


def unloaded_plugins() -> str:
    """The plugins that failed to load, said beside a name that is not known: it may be one
    of theirs (``GET /api/methods`` lists them whole). Each error on one line, cut short."""
    return "".join(
        f"; plugin {e.plugin} not loaded ({shortened(' '.join(e.error.split()), _ERROR_SHOWN)})"
        for e in PLUGIN_ERRORS
    )


def _named_unknown_method(data: Any) -> Any:
    """A request whose method (or, without one, preset) names none there is: refused with
    that name, the known ones and the plugins that did not load; any other request goes on
    to the union."""
    if not isinstance(data, dict) or _method_of(data) is not None:
        return data
    key, known = ("method", METHOD_SPECS) if data.get("method") is not None else ("preset", PRESETS)
    name = data.get(key)
    if isinstance(name, str) and name not in known:
        shown = shortened(name, _NAME_SHOWN)
        # the whole text and no context: pydantic would fill "{...}" inside the name
        raise PydanticCustomError(
            "unknown_method",
            f"unknown {key} {shown!r}: choose {_KNOWN}{unloaded_plugins()}",  # the CLI's too
        )
    return data


METHOD_REQUESTS: dict[str, type[RunRequestBase]] = {
    name: _method_request(spec) for name, spec in METHOD_SPECS.items()
}

# Built from the catalogue at import (plugins included), so it is a value to the type
# checker (Any), a type to pydantic and FastAPI.
RunRequest: Any = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for name, model in METHOD_REQUESTS.items())],  # noqa: UP007
    Discriminator(
        _method_of, custom_error_type="unknown_method", custom_error_message=UNKNOWN_METHOD
    ),
    BeforeValidator(_named_unknown_method),
    Field(
        description="A run config: a method with any fields to override its defaults, or a "
        "preset with overrides. Unknown fields are errors."
    ),
]
RUN_REQUEST: TypeAdapter[RunRequestBase] = TypeAdapter(RunRequest)


def run_config(request: RunRequestBase) -> RunConfig:
    """The RunConfig of a validated request: its fields are RunConfig's, already checked
    (``model_construct``: no second validation)."""
    return RunConfig.model_construct(**request.model_dump(exclude=set(RunLabels.model_fields)))


def resolve_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a run request (method defaults < preset < the fields given) into its
    RunConfig; raises pydantic's ``ValidationError``, each error at its field."""
    return run_config(RUN_REQUEST.validate_python(raw))
