"""``collapse-lab``: train a method or the whole preset zoo in this process, or start the service.

collapse-lab train --preset simsiam-no-stopgrad --epochs 10 --jsonl run.jsonl
collapse-lab train --method vicreg --set variance_weight=0 --set proj_dim=64
collapse-lab zoo --dataset digits
collapse-lab sweep --preset vicreg --grid variance_weight=0,5,25 --grid covariance_weight=0,1
collapse-lab up
collapse-lab sync ./collapse-lab-runs http://head:8000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, get_args, get_origin

from collapse_lab import sync as client_sync
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from tqdm import tqdm

from contract import (
    METHOD_SPECS,
    PRESETS,
    VERDICT_KINDS,
    ZOO_FIELDS,
    EpochRecord,
    RunConfig,
    resolve_config,
)
from contract.datasets import DatasetError, existing_folder
from contract.requests import unloaded_plugins
from contract.strict import error_message
from contract.sweeps import (
    SweepError,
    SweepRequest,
    aggregate_verdicts,
    expand_sweep,
    read_typed,
)
from workers import launcher
from workers.engine.errors import TrainingError

if TYPE_CHECKING:
    from workers.engine.trainer import RunResult


class UsageError(Exception):
    """A bad command-line argument; printed as one line, exit status 2."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """'key=value' -> (key, value), the value read as JSON when it parses ('0.5', 'false')."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {text!r}")
    value = read_typed(raw)
    return key.strip(), value


def _is_text(field: FieldInfo) -> bool:
    """Whether a RunConfig field holds text (a name, a path): its flag's value is kept as
    typed, not read as JSON ('--dataset-path 2024' is a folder, not a number)."""
    kinds = [a for a in get_args(field.annotation) or [field.annotation] if a is not type(None)]
    if get_origin(field.annotation) is Literal:
        kinds = [field.annotation]
    return all(
        kind is str
        or (get_origin(kind) is Literal and all(isinstance(v, str) for v in get_args(kind)))
        for kind in kinds
    )


def parse_flag_value(field: FieldInfo, text: str) -> Any:
    """A run-config flag's value as the API would receive it: JSON when it parses ('0.5',
    '5', 'null'), else the text; RunConfig then validates it, with the API's messages."""
    if text == "null" or not _is_text(field):
        return read_typed(text)
    return text


# how a default of None reads in --help (as in the README's settings table), not JSON's null
UNSET = "unset"


def _flag_help(name: str, field: FieldInfo) -> str:
    """A field's description, its choices or bounds, and its default (all from RunConfig)."""
    parts = [field.description.rstrip(".") + "." if field.description else ""]
    literals = [a for a in get_args(field.annotation) if get_origin(a) is Literal]
    if get_origin(field.annotation) is Literal:
        literals = [field.annotation]
    if name == "method":
        parts.append(f"One of: {', '.join(sorted(METHOD_SPECS))}.")
    elif name == "preset":
        parts.append(f"One of: {', '.join(PRESETS)}.")
    elif literals:
        parts.append(f"One of: {', '.join(str(v) for v in get_args(literals[0]))}.")
    elif callable(field.json_schema_extra):  # choices known at run time (the dataset registry)
        schema: dict[str, Any] = {}
        field.json_schema_extra(schema)
        if "enum" in schema:
            parts.append(f"One of: {', '.join(str(v) for v in schema['enum'])}.")
    bounds = [
        f"{symbol} {getattr(rule, attribute)}"
        for rule in field.metadata
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if getattr(rule, attribute, None) is not None
    ]
    if bounds:
        parts.append(f"Allowed: {', '.join(bounds)}.")
    if not field.is_required():
        default = field.get_default(call_default_factory=True)
        parts.append(f"Default: {UNSET if default is None else default}.")
    return " ".join(p for p in parts if p).replace("%", "%%")


def add_run_config_arguments(
    parser: argparse.ArgumentParser, fields: tuple[str, ...] | None = None
) -> None:
    """One flag per RunConfig field (``image_size`` -> ``--image-size``) with its description,
    choices, bounds and default, so a new field appears here by itself; method options go
    through ``--set``. ``fields``: only these fields' flags, and no ``--set``."""
    group = parser.add_argument_group(
        "run config (RunConfig)",
        "A flag left out takes the preset's value, else the method's, else the default shown. "
        "Values are validated as POST /api/runs validates them.",
    )
    for name, field in RunConfig.model_fields.items():
        if name == "options" or (fields is not None and name not in fields):
            continue
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=name.upper(),
            type=functools.partial(parse_flag_value, field),
            help=_flag_help(name, field),
        )
    if fields is not None:
        parser.set_defaults(set=None)
        return
    group.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a method option (or any config field), e.g. --set stop_gradient=false; the "
        "value is read as JSON when it parses",
    )


def build_raw_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run request the flags describe, as a JSON body would give it to the API."""
    raw: dict[str, Any] = {
        name: getattr(args, name)
        for name in RunConfig.model_fields
        if getattr(args, name, None) is not None
    }
    options: dict[str, Any] = {}
    for assignment in args.set or []:
        key, value = parse_assignment(assignment)
        if key == "options":  # its keys would merge with, or be lost to, the others'
            raise UsageError("set method options one by one: --set NAME=VALUE")
        if key.startswith("options."):
            into, name = options, key.removeprefix("options.")
        else:
            into, name = (raw if key in RunConfig.model_fields else options), key
        if name in into:  # one value each: which of two would win is not for a flag to decide
            flagged = into is raw and getattr(args, name, None) is not None
            given = f"--{name.replace('_', '-')}" if flagged else "--set"
            raise UsageError(f"{name} is given twice ({given} and --set {assignment})")
        into[name] = value
    if options:
        raw["options"] = options
    return raw


def describe_validation_error(exc: ValidationError) -> str:
    """The first error as the API's 422 gives it: its location (after ``body``; a run
    request's starts with its method) and its message (:func:`error_message`)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"{where}: {error_message(first)}" if where else error_message(first)
    method, *rest = [str(part) for part in first["loc"]] + ["", ""]
    if first["type"] == "extra_forbidden" and rest[0] == "options" and method in METHOD_SPECS:
        names = ", ".join(METHOD_SPECS[method].options.model_fields) or "none"
        message += f"; {method}'s options: {names}"
    return message


def _grid_value(value: Any) -> str:
    """A grid value as it is typed (JSON: true, null), a name as it is."""
    return value if isinstance(value, str) else json.dumps(value)


def _knn_text(value: float | None) -> str:
    """A kNN accuracy as the tables print it; "—" where none is measured (one class)."""
    return "—" if value is None else f"{value:.3f}"


def format_row(record: EpochRecord) -> str:
    p, b = record.projector, record.backbone
    assert b is not None  # the trainer always measures h (only external runs lack it)
    loss = "      -" if record.loss is None else f"{record.loss:7.3f}"
    kind = record.verdict.kind if record.verdict else "-"
    return (
        f"{record.epoch:5d} {loss} {p.std_l2_sqrt_d:9.3f} {p.effective_rank:8.1f} "
        f"{b.effective_rank:8.1f} {_knn_text(b.knn_top1):>6} {record.epoch_time_s:6.1f}s  {kind}"
    )


TABLE_HEADER = "epoch    loss  std·√d(z)  rank(z)  rank(h)  kNN(h)   time  verdict"


def run_with_progress(
    config: RunConfig,
    data_dir: Path,
    out: TextIO,
    jsonl: JsonlFile | None,
    one_of_many: bool = False,
) -> RunResult:
    """Train ``config`` under a progress bar, each epoch's row on ``out`` unless it is
    ``one_of_many`` (a zoo's or a sweep's run, whose caller prints one row per run)."""
    bar = tqdm(
        total=config.epochs,
        desc=config.preset or config.method,
        unit="epoch",
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        # a bar under the zoo's or sweep's bar moves the cursor up: in a log file, only codes
        disable=one_of_many and not sys.stderr.isatty(),
    )

    header_due = not one_of_many  # printed above the first row: not above a data error

    def on_epoch(record: EpochRecord) -> None:
        nonlocal header_due
        if header_due:
            tqdm.write(TABLE_HEADER, file=out)
            header_due = False
        if not one_of_many:
            tqdm.write(format_row(record), file=out)
        if jsonl is not None:
            jsonl.write(record.model_dump_json())
        if record.epoch > 0:
            bar.update(1)
        else:
            bar.set_postfix_str("training")

    def on_progress(epoch: int, step: int, steps: int, images_per_s: float) -> None:
        bar.set_postfix_str(f"step {step}/{steps}, {images_per_s:.0f} img/s")

    # seconds pass before the first step: say what they go to
    bar.set_postfix_str("loading the data, measuring the untrained network")
    from workers.engine.trainer import TrainHooks, train  # torch: seconds, for trainings only

    try:
        return train(
            config, data_root=data_dir, hooks=TrainHooks(on_epoch=on_epoch, on_progress=on_progress)
        )
    finally:
        bar.close()


def check_dataset_path(config: RunConfig, data_dir: Path) -> None:
    """UsageError when ``dataset_path`` names no folder inside ``data_dir``: the rules the
    API applies before it accepts a run (backend/validation.py), before anything is drawn,
    located at the field as the API's 422 locates them."""
    if config.dataset_path is None:
        return
    try:
        existing_folder(data_dir, config.dataset_path, f"the data directory {data_dir}")
    except DatasetError as exc:
        raise UsageError(f"{config.method}.dataset_path: {exc}") from None


def open_jsonl(path: Path) -> TextIO:
    """``--jsonl``'s file, opened without truncating it (JsonlFile empties it at its first
    record); UsageError if it cannot be opened."""
    try:
        return open(path, "a")  # the caller closes it
    except OSError as exc:
        raise UsageError(f"--jsonl {str(path)!r}: {exc.strerror or exc}") from None


class JsonlFile:
    """``--jsonl``'s file, opened before training (UsageError when it cannot be), but an
    existing file is replaced only once the run's first record is ready: a run that fails
    before it (a dataset that cannot be downloaded) leaves the file as it was, or none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.made_here = not os.path.lexists(path)  # a dangling symlink is not ours to remove
        self.written = False
        self.file = open_jsonl(path)

    def write(self, line: str) -> None:
        # the earlier run's records go now (a pipe, a terminal or /dev/null has none)
        if not self.written and self.path.is_file():
            self.file.truncate(0)  # appends then start at 0
        self.written = True
        self.file.write(line + "\n")
        self.file.flush()  # a reader (tail -f) sees each epoch as it ends

    def close(self) -> None:
        self.file.close()
        if self.made_here and not self.written:
            self.path.unlink(missing_ok=True)


def require_method(args: argparse.Namespace) -> None:
    """What train and sweep need to know first: the preset or the method."""
    if not args.preset and not args.method:
        raise UsageError("give --preset NAME or --method NAME")


def cmd_train(args: argparse.Namespace) -> int:
    require_method(args)
    config = resolve_config(build_raw_config(args))
    check_dataset_path(config, args.data_dir)
    from workers.engine.trainer import select_device  # torch: seconds, for trainings only

    select_device(config.device)  # a device this host lacks is refused before --jsonl is opened
    jsonl = JsonlFile(args.jsonl) if args.jsonl else None
    try:
        print(
            f"{config.preset or config.method} on {config.dataset}, {config.backbone}, "
            f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}, "
            f"batch {config.batch_size}, seed {config.seed}"
        )
        result = run_with_progress(config, args.data_dir, sys.stdout, jsonl)
        if jsonl is not None:
            jsonl.write(json.dumps({"verdict": result.verdict.model_dump(mode="json")}))
    finally:
        if jsonl is not None:
            jsonl.close()
    verdict = result.verdict
    onset = "" if verdict.onset_epoch is None else f" (from epoch {verdict.onset_epoch})"
    print(f"verdict: {verdict.kind}{onset}: {verdict.reason}")
    for finding in verdict.findings:  # what the kind does not say: a collapse coming...
        print(f"  - {finding}")
    if verdict.cause is not None:
        cause = verdict.cause
        since = "" if cause.onset_epoch is None else f" (from epoch {cause.onset_epoch})"
        print(f"cause: {cause.guard}{since}: {cause.reason}")
        print(f"try: {cause.advice}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    rows = []
    if args.presets is None:
        names = list(PRESETS)
    else:
        names = [name.strip() for name in args.presets.split(",") if name.strip()]
        if not names:
            raise UsageError(f"--presets {args.presets!r}: no presets given (leave it out for all)")
    for name in names:
        if name not in PRESETS:
            raise UsageError(
                f"unknown preset {name!r}; choose from {', '.join(PRESETS)}{unloaded_plugins()}"
            )
    configs = []
    for name in names:  # every preset is checked before any trains
        try:
            configs.append(resolve_config({"preset": name, **build_raw_config(args)}))
        except ValidationError as exc:
            raise UsageError(f"preset {name}: {describe_validation_error(exc)}") from None
    check_dataset_path(configs[0], args.data_dir)  # the same for every preset
    for name, config in tqdm(
        list(zip(names, configs, strict=True)), desc="zoo", unit="run", file=sys.stderr
    ):
        started = time.perf_counter()
        result = run_with_progress(config, args.data_dir, sys.stdout, None, one_of_many=True)
        last = result.history[-1]
        assert last.backbone is not None  # the trainer always measures h
        rows.append(
            (
                name,
                PRESETS[name].expected,
                result.verdict.kind,
                result.verdict.cause.guard if result.verdict.cause else "—",
                config.epochs,
                last.projector.std_l2_sqrt_d,
                last.projector.effective_rank,
                last.backbone.knn_top1,
                time.perf_counter() - started,
            )
        )
    print(
        "| preset | expected | verdict | cause | epochs | std·√d (z) | eff. rank (z) | kNN (h) "
        "| time |"
    )
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, expected, kind, guard, epochs, std, rank, knn, seconds in rows:
        mark = "" if kind == expected else " ✗"
        print(
            f"| {name} | {expected} | {kind}{mark} | {guard} | {epochs} | {std:.3f} | "
            f"{rank:.1f} | {_knn_text(knn)} | {seconds:.0f} s |"
        )
    return 0


# a kind's first word: "complete" (as frontend/js/colours.js names its CSS colours)
SHORT_KINDS = {kind: kind.split("_")[0] for kind in VERDICT_KINDS}


def _cell_text(results: list[RunResult]) -> str:
    """'complete@3' (the kind its seeds reached, from that epoch), '*' when seeds disagree."""
    verdict = aggregate_verdicts([(r.verdict.kind, r.verdict.onset_epoch) for r in results])
    if verdict.kind is None:
        return "-"
    text = SHORT_KINDS[verdict.kind]
    if verdict.kind != "healthy" and verdict.onset_epoch is not None:
        text += f"@{verdict.onset_epoch}"
    return text if verdict.seeds_agree else f"{text}*"


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2]; their range is the sweep request's to check."""
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--seeds expects whole numbers separated by commas, got {text!r}"
        ) from None


def cmd_sweep(args: argparse.Namespace) -> int:
    require_method(args)
    grid: dict[str, str] = {}
    for assignment in args.grid or []:
        key, sep, values = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"--grid expects key=v1,v2,... or key=start..stopxN[log], got {assignment!r}"
            )
        if key in grid:
            raise UsageError(f"--grid {key} is given twice: give all its values in one --grid")
        # the text as the API takes it: the sweep request parses it (parse_grid_values) and
        # names the key at fault
        grid[key] = values
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None  # '' is refused
    base = build_raw_config(args)
    if args.full and ("stop_after_settled_epochs" in base or "stop_after_settled_epochs" in grid):
        raise UsageError(
            "--full trains every epoch, stop_after_settled_epochs stops early: give one"
        )
    request = SweepRequest.model_validate(
        {
            "base": base,
            "grid": grid,
            "seeds": seeds,
            "stop_when_settled": not args.full,
        }
    )
    axes, runs = expand_sweep(request)
    configs = []
    for run in runs:  # every run is checked before any trains
        try:
            configs.append(resolve_config(run.request))
        except ValidationError as exc:
            point = ", ".join(f"{k}={json.dumps(v)}" for k, v in run.point.items())
            raise UsageError(f"at {point}: {describe_validation_error(exc)}") from None
    for config in configs:
        check_dataset_path(config, args.data_dir)
    print(
        f"{len(runs)} run{'' if len(runs) == 1 else 's'}: "
        + " x ".join(f"{a.key} in {json.dumps(a.values)}" for a in axes)
        + f", seeds {sorted({c.seed for c in configs})}"
    )
    results: dict[int, list[RunResult]] = {}
    print(
        "| "
        + " | ".join(a.key for a in axes)
        + " | seed | verdict | onset | epochs | spread (z) | eff. rank (z) | kNN (h) | time |"
    )
    print(
        "| "
        + " | ".join("---" for _ in axes)
        + " | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for run, config in tqdm(
        list(zip(runs, configs, strict=True)), desc="sweep", unit="run", file=sys.stderr
    ):
        started = time.perf_counter()
        result = run_with_progress(config, args.data_dir, sys.stdout, None, one_of_many=True)
        results.setdefault(run.cell, []).append(result)
        last = result.history[-1]
        values = " | ".join(_grid_value(v) for v in run.point.values())
        onset = "-" if result.verdict.onset_epoch is None else str(result.verdict.onset_epoch)
        stopped = " (stopped early)" if result.verdict.stopped_early else ""
        knn = _knn_text(last.backbone.knn_top1 if last.backbone is not None else None)
        tqdm.write(
            f"| {values} | {config.seed} | {result.verdict.kind}{stopped} | {onset} | "
            f"{last.epoch}/{config.epochs} | {last.projector.spread:.3f} | "
            f"{last.projector.effective_rank:.1f} | {knn} | "
            f"{time.perf_counter() - started:.0f} s |",
            file=sys.stdout,
        )
    print()
    print("collapse map (verdict@onset epoch; * = seeds disagree):")
    first = axes[0]
    if len(axes) == 1:
        print(f"| {first.key} | " + " | ".join(_grid_value(v) for v in first.values) + " |")
        print("| --- | " + " | ".join("---" for _ in first.values) + " |")
        cells = [_cell_text(results.get(i, [])) for i in range(len(first.values))]
        print("| verdict | " + " | ".join(cells) + " |")
    else:
        second = axes[1]
        print(
            f"| {first.key} \\ {second.key} | "
            + " | ".join(_grid_value(v) for v in second.values)
            + " |"
        )
        print("| --- | " + " | ".join("---" for _ in second.values) + " |")
        for row, value in enumerate(first.values):
            start = row * len(second.values)
            cells = [_cell_text(results.get(start + col, [])) for col in range(len(second.values))]
            print(f"| {_grid_value(value)} | " + " | ".join(cells) + " |")
    return 0


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to the flags that have one (not to unset flags or switches)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _method_options_help() -> str:
    """Each method's options, for --set and --grid (their flags are not RunConfig's)."""
    lines = ["method options (--set NAME=VALUE, --grid NAME=VALUES):"]
    for name, spec in sorted(METHOD_SPECS.items()):
        options = ", ".join(spec.options.model_fields) or "(none)"
        lines += textwrap.wrap(
            f"{name}: {options}", width=88, initial_indent="  ", subsequent_indent="    "
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command and its subcommands; each subcommand's --help lists its flags, defaults
    included."""
    parser = argparse.ArgumentParser(
        prog="collapse-lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    launcher.add_data_dir_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    options_help = _method_options_help()

    def command(name: str, summary: str, epilog: str | None = None) -> argparse.ArgumentParser:
        subparser = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=epilog,
            formatter_class=DefaultsShown,
        )
        launcher.add_data_dir_argument(subparser, after_subcommand=True)
        subparser.set_defaults(subcommand_parser=subparser)  # its usage in its errors
        return subparser

    tr = command("train", "train one run in this process", options_help)
    add_run_config_arguments(tr)
    tr.add_argument(
        "--jsonl",
        type=Path,
        help="write one JSON record per epoch here, and the verdict last; an existing file is "
        "replaced once the first record is ready (a run that fails before it leaves it as it "
        "was)",
    )
    tr.set_defaults(func=cmd_train)

    zoo = command("zoo", "run every preset and print the methods x verdict table")
    add_run_config_arguments(zoo, ZOO_FIELDS)
    zoo.add_argument("--presets", help="comma-separated subset of presets (default: all)")
    zoo.set_defaults(func=cmd_zoo)

    sw = command(
        "sweep",
        "a grid of one or two fields or options, one run after another, as a map",
        options_help,
    )
    add_run_config_arguments(sw)
    sw.add_argument(
        "--grid",
        action="append",
        metavar="KEY=VALUES",
        help="a field or option and its values: variance_weight=0,5,25 or lr=0.01..1x5log "
        "(at most two --grid)",
    )
    sw.add_argument("--seeds", help="comma-separated seeds of every grid point (default: 0)")
    sw.add_argument(
        "--full", action="store_true", help="train every epoch (no early stop once collapsed)"
    )
    sw.set_defaults(func=cmd_sweep)

    worker = command(
        "worker", "start this host's training workers: one per GPU (--gpus), or CPU ones"
    )
    launcher.add_worker_arguments(worker)
    worker.set_defaults(func=launcher.worker)

    up = command("up", "start Redis (if needed), the workers and the API")
    launcher.add_up_arguments(up)
    up.set_defaults(func=launcher.up)

    # listed here for --help; main() hands `collapse-lab sync ...` to the client's own parser
    sync = sub.add_parser(
        SYNC,
        help="upload runs a Monitor wrote offline to a server (the client's "
        "python -m collapse_lab sync; collapse-lab sync --help)",
        add_help=False,
    )
    sync.set_defaults(func=sync_after_options)
    return parser


SYNC = "sync"  # the client's command (collapse_lab/sync.py), handed over whole
SYNC_TAKES_NO_DATA_DIR = (
    "sync reads no data directory, only the folders it is given: drop --data-dir "
    "(collapse-lab sync [options] DIR [DIR ...] [URL])"
)


def sync_after_options(_args: argparse.Namespace) -> int:
    """``collapse-lab --data-dir D sync ...``: sync reads no data directory."""
    raise UsageError(SYNC_TAKES_NO_DATA_DIR)


def run_sync(argv: list[str]) -> int:
    """``collapse-lab sync ...``: the same command as in a client-only install, its flags its
    own; a --data-dir among them is refused as before the subcommand, not as an unknown flag."""
    if any(arg == "--data-dir" or arg.startswith("--data-dir=") for arg in argv):
        raise UsageError(SYNC_TAKES_NO_DATA_DIR)
    return client_sync.main(argv, prog="collapse-lab")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed; what follows ``sync`` is the client's, not this parser's to refuse
    (``--data-dir D sync DIR URL`` gets sync_after_options' message, not "unrecognized
    arguments: DIR URL")."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != SYNC:
        # the subcommand's usage, whose flags the user meant, not the command's
        args.subcommand_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == [SYNC]:
            return run_sync(argv)
        args = parse_arguments(argv)
        status: int = args.func(args)
        return status
    except UsageError as exc:
        print(f"collapse-lab: error: {exc}", file=sys.stderr)
        return 2
    except SweepError as exc:
        print(f"collapse-lab: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"collapse-lab: error: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except (DatasetError, TrainingError) as exc:
        print(f"collapse-lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("collapse-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
