"""The server's checks of a run request, beyond the contract's own validation.

Pydantic validates the request (:data:`contract.requests.RunRequest`) and places every error
at its field: FastAPI answers ``{"detail": [{"loc": ["body", "simsiam", "epochs"], "msg":
"Input should be greater than or equal to 1", "type": "greater_than_equal"}]}`` (after
``body`` comes the union member, the request's method). Then this deployment's limits apply
(``MAX_EPOCHS``, ``MAX_BATCH_SIZE``, ``MAX_PROBE_SIZE``, ``MAX_TRAIN_SIZE``) and an
``imagefolder`` path must be an existing folder inside ``DATA_DIR``; their errors take the
same shape.

:func:`reject_unknown_query` answers a query parameter an ``/api`` route does not take with a
422 at ``["query", name]``, as a body's unknown field is.

:data:`EpochBound` keeps an epoch in a path or query parameter within ``wire.MAX_EPOCH`` (an
``AfterValidator``, so the published OpenAPI document, and the dashboard's types generated
from it, stay as they are).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from collapse_lab import wire
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, ValidationError

from backend.settings import Settings
from contract import RunConfig
from contract.datasets import DatasetError, existing_folder
from contract.requests import RUN_REQUEST, RunRequestBase, run_config


def _within_epochs(epoch: int | None) -> int | None:
    # -1 stays a valid ``since`` ("every epoch"); an integer past 64 bits would reach the
    # database driver, which cannot bind it (OverflowError: a 500)
    if epoch is not None and not -1 <= epoch <= wire.MAX_EPOCH:
        raise ValueError(
            f"epochs go from 0 to {wire.MAX_EPOCH} (MAX_EPOCH, client/PROTOCOL.md): log "
            "epochs, not steps"
        )
    return epoch


# An epoch parameter outside -1..wire.MAX_EPOCH is a 422 naming it (no such epoch is stored).
EpochBound = AfterValidator(_within_epochs)


def _error(loc: list[Any], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


# read by backend/auth.py on every route, declared by none
SHARE_PARAMETER = "share"


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


_declared_query_names: dict[str, frozenset[str]] = {}  # by the route's unique_id


async def reject_unknown_query(request: Request) -> None:
    """Unknown fields are errors in the query too: ``GET /api/runs?stauts=failed`` would
    otherwise answer every run as if it were filtered. A 422 names each unknown parameter
    and the ones the route takes."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _declared_query_names.get(route.unique_id)
    if known is None:
        known = frozenset(_query_names(route.dependant) | {SHARE_PARAMETER})
        _declared_query_names[route.unique_id] = known
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if unknown:
        takes = ", ".join(sorted(known))
        raise RequestValidationError(
            [
                _error(
                    ["query", name],
                    f"unknown query parameter; this takes {takes}",
                    "extra_forbidden",
                )
                for name in unknown
            ]
        )


def check_limits(config: RunConfig, settings: Settings) -> list[dict[str, Any]]:
    """The deployment's limits, beyond what the engine accepts (``loc``: the field)."""
    errors = []
    limits = (
        ("epochs", settings.max_epochs, "MAX_EPOCHS"),
        ("batch_size", settings.max_batch_size, "MAX_BATCH_SIZE"),
        ("probe_size", settings.max_probe_size, "MAX_PROBE_SIZE"),
        ("train_size", settings.max_train_size, "MAX_TRAIN_SIZE"),
    )
    for field, limit, variable in limits:
        value = getattr(config, field)
        if value is not None and value > limit:
            errors.append(
                _error(
                    [field],
                    f"{value} is above this server's limit of {limit} ({variable})",
                    "less_than_equal",
                )
            )
    # a path given to a dataset that takes none is refused by the contract (RunRules)
    if config.dataset_path is not None:
        try:
            existing_folder(settings.resolved_data_dir, config.dataset_path)
        except DatasetError as exc:
            errors.append(_error(["dataset_path"], str(exc)))
    return errors


def _internal_host(host: str) -> str | None:
    """What is internal about a URL's host (None: nothing): ``localhost`` or a literal IP
    address that is loopback, private, link-local, unspecified, multicast, reserved or
    otherwise not globally routable. Names are not resolved (a DNS name is trusted)."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the forms the resolver takes too: 127.1, 2130706433, 0x7f.0.0.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "private", "link_local", "unspecified", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not address.is_global:  # a carrier's shared space (100.64.0.0/10), and the like
        return "an address that is not globally routable"
    return None


def receiver_errors(
    urls: Sequence[str], settings: Settings, loc: Sequence[Any]
) -> list[dict[str, Any]]:
    """A request's webhook URLs (``alerts``) that name this server's own network, refused
    unless ``ALERT_ALLOW_PRIVATE`` (``loc``: where the list is)."""
    if settings.alert_allow_private:
        return []
    errors = []
    for index, url in enumerate(urls):
        problem = _internal_host(urlsplit(url).hostname or "")
        if problem is not None:
            errors.append(
                _error(
                    [*loc, index],
                    f"the webhook's host is {problem}: alerts are not sent to this server's "
                    "own network unless ALERT_ALLOW_PRIVATE=true",
                )
            )
    return errors


def check_receivers(urls: Sequence[str], settings: Settings, loc: Sequence[Any]) -> None:
    """Raise :func:`receiver_errors` as a 422."""
    errors = receiver_errors(urls, settings, loc)
    if errors:
        raise RequestValidationError(errors)


def accepted_config(
    request: RunRequestBase, settings: Settings, where: tuple[Any, ...] = ("body",)
) -> RunConfig:
    """The RunConfig of a valid request, if this server accepts it; otherwise raises
    RequestValidationError at ``where`` + the method + the field."""
    config = run_config(request)
    errors = check_limits(config, settings) + receiver_errors(request.alerts, settings, ["alerts"])
    if errors:
        located = [{**e, "loc": [*where, request.method_name, *e["loc"]]} for e in errors]
        raise RequestValidationError(located)
    return config


def validate_request(
    raw: Any, settings: Settings, where: tuple[Any, ...] = ("body",)
) -> tuple[RunRequestBase, RunConfig]:
    """A run request that FastAPI did not validate itself (each of a zoo's presets, each run
    of a sweep): validated by the contract, then checked by :func:`accepted_config`."""
    try:
        request = RUN_REQUEST.validate_python(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": [*where, *e["loc"]]} for e in errors]) from None
    return request, accepted_config(request, settings, where)


def as_sent(request: RunRequestBase) -> dict[str, Any]:
    """The request's fields as the client sent them (stored with the run, shown on its page)."""
    return request.model_dump(mode="json", exclude_unset=True)
