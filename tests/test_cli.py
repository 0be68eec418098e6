"""The command line: clear one-line errors, a table per epoch and the JSONL records."""

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from backend.settings import REPO_ROOT, Settings, get_settings
from contract import METHOD_SPECS, RunConfig
from contract.datasets import DATASET_SPECS, DatasetError
from contract.requests import RUN_REQUEST
from contract.strict import error_message
from contract.sweeps import parse_grid_values
from workers import launcher
from workers.cli import (
    TABLE_HEADER,
    UNSET,
    JsonlFile,
    _grid_value,
    build_parser,
    parse_flag_value,
)
from workers.cli import main as cli_main
from workers.launcher import (
    DATA_DIR_HELP,
    die_with_parent,
    dies_with_this_process,
    free_local_port,
    hold_data_dir,
    service_environment,
)

TINY = {
    "train_size": 256, "probe_size": 128, "batch_size": 64, "width": 8, "proj_dim": 32,
    "proj_hidden_dim": 64,
}  # fmt: skip


def tiny_sets(**changed: object) -> list[str]:
    """``--set`` flags of a tiny run, ``changed`` laid over it (a field set twice is refused)."""
    return [
        arg for key, value in {**TINY, **changed}.items() for arg in ("--set", f"{key}={value}")
    ]


TINY_SETS = tiny_sets()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(cwd / "data")}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.fixture
def cli_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``collapse-lab ARGS`` in this process, as :func:`run_cli` runs it in a new one (whose
    start, torch's import included, costs seconds): the exit status and what it printed."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()  # what came before is not this command's
        status = cli_main(["--data-dir", str(tmp_path / "data"), *args])
        printed = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), status, printed.out, printed.err)

    return run


GRID = ["--grid", "variance_weight=0,1"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--preset", "nope"], "unknown preset 'nope': choose a method ("),
        (["train", "--method", "nosuch"], "unknown method 'nosuch': choose a method ("),
        (["train", "--method", "nosuch"], "choose a method (barlow_twins, byol, deepcluster"),
        (["train", "--method", "simsiam", "--epochs", "0"], "epochs"),
        (["train", "--method", "simsiam", "--set", "bogus=1"], "options.bogus"),
        (["train", "--method", "simsiam", "--set", "nonsense"], "--set expects key=value"),
        (["train"], "give --preset NAME or --method NAME"),
        (["zoo", "--presets", "simsiam,nope"], "unknown preset 'nope'"),
        (["sweep", "--preset", "vicreg", "--grid", "bogus=1,2"], "grid.bogus"),
        (["sweep", "--preset", "vicreg", "--grid", "variance_weight=0,-1"], "variance_weight=-1"),
        (["sweep", "--preset", "vicreg", "--grid", "novalues"], "--grid expects key="),
        (["sweep", "--preset", "vicreg"], "grid: give one or two"),
        (["sweep", "--preset", "vicreg", *GRID, "--seeds", "a"], "--seeds expects whole numbers"),
        (["sweep", "--preset", "vicreg", *GRID, "--seeds", "0,,1"], "got '0,,1'"),
        (["sweep", "--preset", "vicreg", *GRID, "--seeds", ""], "got ''"),
        (
            ["train", "--preset", "simsiam", "--dataset-path", "x"],
            "simsiam.dataset_path: dataset_path is only for 'imagefolder'",
        ),
        (
            ["zoo", "--presets", "byol", "--dataset-path", "x"],
            "preset byol: byol.dataset_path: dataset_path is only for 'imagefolder'",
        ),
        (["zoo", "--presets", "simsiam", "--epochs", "0"], "preset simsiam: simsiam.epochs:"),
        # a range reaches the runs' checks (it was refused as "grid.lr.list.0.bool")
        (
            ["sweep", "--preset", "vicreg", "--grid", "lr=0.01..1x5log", "--grid", "x=0"],
            "grid.x: not a run-config field",
        ),
        (
            [
                "sweep",
                "--preset",
                "vicreg",
                "--grid",
                "lr=0.01..1x5log",
                "--grid",
                "variance_weight=0,-1",
            ],
            "at lr=0.01, variance_weight=-1: vicreg.options.variance_weight:",
        ),
        (
            ["sweep", "--preset", "vicreg", "--grid", "lr=0..1x1"],
            "grid.lr: '0..1x1': steps: Input should be",
        ),
        (["sweep", "--preset", "vicreg", "--grid", "lr=-..1x3"], "grid.lr: '-..1x3'"),
        (
            ["sweep", "--preset", "vicreg", "--grid", "lr=0.1", "--grid", " lr=0.2"],
            "--grid lr is given twice",
        ),
        (["zoo", "--presets", ""], "--presets '': no presets given"),
        (["zoo", "--presets", " , "], "no presets given"),
        (
            ["train", "--preset", "simsiam", "--jsonl", "missing/run.jsonl"],
            "--jsonl 'missing/run.jsonl': No such file or directory",
        ),
        # nan and inf spelt as Python spells them, not only as JSON does (NaN, 1e400)
        (["train", "--method", "simsiam", "--lr", "nan"], "simsiam.lr: Input should be a finite"),
        (["train", "--method", "simsiam", "--lr", "inf"], "simsiam.lr: Input should be a finite"),
        (["train", "--method", "simsiam", "--lr=-Infinity"], "simsiam.lr: Input should be a fin"),
        (["train", "--method", "simsiam", "--lr", "1e400"], "simsiam.lr: Input should be a fin"),
        (["train", "--method", "simsiam", "--set", "lr=nan"], "simsiam.lr: Input should be a fin"),
        (
            [
                "sweep",
                "--method",
                "simsiam",
                "--grid",
                "lr=0.1,0.2",
                "--full",
                "--stop-after-settled-epochs",
                "1",
            ],
            "--full trains every epoch, stop_after_settled_epochs stops early: give one",
        ),
        (
            ["sweep", "--method", "simsiam", "--full", "--grid", "stop_after_settled_epochs=1,2"],
            "--full trains every epoch, stop_after_settled_epochs stops early: give one",
        ),
        (
            ["train", "--method", "simsiam", "--set", 'options={"predictor": false}'],
            "set method options one by one: --set NAME=VALUE",
        ),
        (
            ["train", "--method", "simsiam", "--set", "stop_gradnt=false"],
            "simsiam.options.stop_gradnt: Extra inputs are not permitted; simsiam's options: "
            "stop_gradient, predictor",
        ),
        # one value each: a flag and a --set of one field, or one option set twice
        (
            ["train", "--method", "simsiam", "--lr", "0.2", "--set", "lr=0.3"],
            "lr is given twice (--lr and --set lr=0.3)",
        ),
        (
            ["train", "--method", "simsiam", "--set", "method=byol"],
            "method is given twice (--method and --set method=byol)",
        ),
        (
            [
                "train",
                "--method",
                "simsiam",
                "--set",
                "stop_gradient=true",
                "--set",
                "options.stop_gradient=false",
            ],
            "stop_gradient is given twice (--set and --set options.stop_gradient=false)",
        ),
        (["sweep", "--method", "vicreg", "--grid", "lr=0.1,inf"], "at lr=Infinity: vicreg.lr: In"),
        # a dataset_path rule is a validation error at the field, as the API's 422
        (
            ["train", "--method", "simsiam", "--dataset", "imagefolder", "--dataset-path", "../x"],
            "simsiam.dataset_path: dataset_path '../x' may not contain '..'",
        ),
        # a range's endpoint past a float's range: not "values repeat" (inf, inf)
        (
            ["sweep", "--method", "vicreg", "--grid", "variance_weight=0..1e400x3"],
            "grid.variance_weight: '0..1e400x3': stop: Input should be a finite number",
        ),
        # a grid value as JSON spells it (null), not as Python does (None)
        (["sweep", "--method", "vicreg", "--grid", "lr=0.1,null"], "at lr=null: vicreg.lr:"),
        # sync reads no data directory: --data-dir after it or before it
        (["sync", "--data-dir", "d", "runs", "http://head:8000"], "sync reads no data directory"),
        (["--data-dir", "d", "sync", "runs", "http://head:8000"], "sync reads no data directory"),
        (["sync", "--data-dir=d", "runs"], "only the folders it is given: drop --data-dir"),
    ],
)
def test_bad_arguments_give_one_clear_line(
    args: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # in this process (the other tests run the command itself): a subprocess per case
    # would spend seconds importing torch only to be refused
    monkeypatch.chdir(tmp_path)
    try:
        status = cli_main(args)
    except SystemExit as exit:
        status = exit.code
    stderr = capsys.readouterr().err
    assert status == 2
    assert needle in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_an_unknown_flag_gets_its_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["train", "--method", "simsiam", "--foo"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: collapse-lab train "), err
    assert err.splitlines()[-1] == "collapse-lab train: error: unrecognized arguments: --foo"


@pytest.mark.slow  # trains in subprocesses for more than a few seconds
def test_train_prints_table_and_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    proc = run_cli(
        "train", "--preset", "simsiam", "--epochs", "2", *TINY_SETS, "--jsonl", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verdict:" in proc.stdout
    title, header, first_row = proc.stdout.splitlines()[:3]
    assert title.startswith("simsiam on ") and header == TABLE_HEADER
    assert first_row.split()[0] == "0"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in lines[:-1]] == [0, 1, 2]
    assert set(lines[-1]) == {"verdict"}
    assert lines[-1]["verdict"]["kind"] in {"healthy", "dimensional_collapse", "complete_collapse"}
    assert {"backbone", "projector", "loss", "lr", "verdict"} <= set(lines[1])


@pytest.mark.slow  # trains for more than a few seconds
def test_zoo_and_train_print_the_cause(
    cli_here: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """The guard a collapse is put on, beside the verdict: the zoo's table (none for a
    healthy preset) and train's last lines."""
    proc = cli_here(
        "zoo", "--presets", "simclr,simclr-no-negatives", "--epochs", "2",
        "--train-size", "256", "--probe-size", "128",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {
        cells[0]: cells
        for line in proc.stdout.splitlines()
        if line.startswith("| simclr")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert rows["simclr"][2:4] == ["healthy", "—"]
    assert rows["simclr-no-negatives"][2:4] == ["complete_collapse", "negatives"]
    proc = cli_here(
        "train", "--preset", "simclr-no-negatives", "--epochs", "2", *TINY_SETS,
        "--jsonl", "run.jsonl",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\ncause: negatives (from epoch " in proc.stdout
    assert "\ntry: " in proc.stdout
    # and what the kind does not say, each finding under the verdict (the backbone's...)
    verdict = json.loads(Path(proc.args[-1]).read_text().splitlines()[-1])["verdict"]
    printed = [line[4:] for line in proc.stdout.splitlines() if line.startswith("  - ")]
    assert printed == verdict["findings"] and printed, proc.stdout


def test_missing_imagefolder_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--method", "simsiam", "--dataset", "imagefolder",
        "--set", "dataset_path=../../etc", "--epochs", "1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "collapse-lab: error: simsiam.dataset_path: " in proc.stderr


@pytest.fixture
def training_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training that fails before its first record, as a dataset that cannot be
    downloaded or an image folder too small to split does."""

    def fail(*_: object, **__: object) -> None:
        raise DatasetError("could not download cifar10: no network")

    monkeypatch.setattr("workers.engine.trainer.train", fail)


def test_a_failing_train_leaves_an_existing_jsonl_as_it_was(
    training_fails: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "keep.jsonl"
    kept.write_bytes(b'{"epoch": 0}\n{"verdict": {}}\n')  # an earlier run's records
    before = kept.read_bytes()
    new = tmp_path / "new.jsonl"
    for jsonl in (kept, new):
        args = ["train", "--method", "simsiam", "--device", "cpu", "--jsonl", str(jsonl)]
        assert cli_main(["--data-dir", str(tmp_path / "data"), *args]) == 1
        printed = capsys.readouterr()
        assert "could not download cifar10" in printed.err
        assert TABLE_HEADER not in printed.out  # no table above the error, only its title
    assert kept.read_bytes() == before
    assert not new.exists()  # nor is an empty one made


def test_the_jsonl_is_replaced_by_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"epoch": 0, "of": "an earlier run"}\n')
    jsonl = JsonlFile(path)  # checked, not yet opened
    assert "an earlier run" in path.read_text()
    jsonl.write('{"epoch": 0}')
    jsonl.write('{"epoch": 1}')
    jsonl.close()
    assert path.read_text() == '{"epoch": 0}\n{"epoch": 1}\n'


@pytest.mark.slow  # trains in subprocesses for more than a few seconds
def test_sweep_runs_each_grid_point_and_prints_the_map(tmp_path: Path) -> None:
    # VICReg on tiny digits at a large learning rate: no variance term collapses by epoch 3
    proc = run_cli(
        "sweep", "--preset", "vicreg", "--epochs", "6", *tiny_sets(batch_size=32),
        "--set", "image_size=16", "--set", "lr=3.0", "--grid", "variance_weight=0,25",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 runs: variance_weight in [0, 25], seeds [0]"
    rows = [line for line in lines if line.startswith("| 0 |") or line.startswith("| 25 |")]
    assert "complete_collapse (stopped early)" in rows[0] and "| healthy |" in rows[1]
    map_row = lines[-1]
    assert map_row.startswith("| verdict | complete@") and map_row.endswith("| healthy |")
    # stderr is a file here, as in a cluster job's log: the sweep's bar, no cursor movements
    assert "sweep:" in proc.stderr and "\x1b[" not in proc.stderr


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit:
        cli_main([command, "--help"])
    assert exit.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_subcommand_help_lists_its_own_flags_with_their_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subcommands.choices) == {"train", "zoo", "sweep", "worker", "up", "sync"}
    for name, parser in subcommands.choices.items():
        if name == "sync":  # the client's command, its own parser (below)
            continue
        shown = help_of(name, capsys)
        flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert flags, name
        assert (
            f"--data-dir DATA_DIR {DATA_DIR_HELP} (default: {get_settings().resolved_data_dir})"
            in shown
        ), name
        for action in flags:
            assert action.option_strings[0] in shown, (name, action.option_strings)
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"default: {action.default}" in shown.replace("Default:", "default:"), (
                    name,
                    action.dest,
                )
    assert "--gpus" in help_of("worker", capsys) and "--cpu-workers" in help_of("worker", capsys)
    up_help = help_of("up", capsys)
    assert "--port" in up_help and "(default: all)" in up_help
    # the dataset registry's names, as the Launch form's choices
    train_help = " ".join(help_of("train", capsys).split())
    assert f"One of: {', '.join(DATASET_SPECS)}." in train_help
    # each method's options (--set, --grid), from its spec
    for command in ("train", "sweep"):
        shown = " ".join(help_of(command, capsys).split())
        for method, spec in METHOD_SPECS.items():
            names = ", ".join(spec.options.model_fields) or "(none)"
            assert f"{method}: {names}" in shown, method
    sync_help = help_of("sync", capsys)  # the client's python -m collapse_lab sync
    assert sync_help.startswith("usage: collapse-lab sync [options] DIR [DIR ...] [URL]")
    for flag in ("--token", "--follow", "--poll SECONDS", "--idle-timeout SECONDS"):
        assert flag in sync_help, flag


@pytest.mark.parametrize("command", ["train", "zoo", "sweep", "worker", "up"])
def test_data_dir_is_taken_after_every_subcommand_and_before_it(command: str) -> None:
    parser = build_parser()
    assert parser.parse_args([command, "--data-dir", "after"]).data_dir == Path("after")
    assert parser.parse_args(["--data-dir", "before", command]).data_dir == Path("before")
    given_twice = ["--data-dir", "before", command, "--data-dir", "after"]
    assert parser.parse_args(given_twice).data_dir == Path("after")
    assert parser.parse_args([command]).data_dir == get_settings().resolved_data_dir


def test_up_hands_its_services_its_address_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings ``up`` and ``worker`` hand the processes they start in the repository:
    the API's address (``up --host --port``: the links in alerts), Redis, and the paths,
    given relative to the launcher's directory, made absolute."""
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    launcher = Settings(
        _env_file=None,
        data_dir=Path("data"),
        database_url="sqlite:///lab.db",
        frontend_dir=Path("ui"),
        redis_url="redis://127.0.0.1:6390/0",
        api_host="127.0.0.1",
        api_port=8123,
    )
    environment = service_environment(launcher)
    for name in ("DATA_DIR", "DATABASE_URL", "FRONTEND_DIR", "REDIS_URL", "API_HOST", "API_PORT"):
        monkeypatch.setenv(name, environment[name])
    monkeypatch.chdir(REPO_ROOT)  # where the services run
    service = Settings(_env_file=None)  # as the API process builds them
    assert service.resolved_data_dir == tmp_path.resolve() / "data"
    assert service.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'lab.db'}"
    assert service.frontend_dir == tmp_path.resolve() / "ui"
    assert service.public_base_url == "http://127.0.0.1:8123"
    assert service.redis_url == "redis://127.0.0.1:6390/0"


def test_every_run_config_field_is_a_train_flag_with_its_description_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = help_of("train", capsys)
    for name, field in RunConfig.model_fields.items():
        if name == "options":
            assert "--set KEY=VALUE" in shown
            continue
        flag = f"--{name.replace('_', '-')}"
        assert flag in shown, flag
        assert field.description, f"RunConfig.{name} needs a description (it is its --help)"
        text = shown[shown.index(f"{flag} {name.upper()} ") :]
        assert " ".join(field.description.split())[:30] in text, name
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            assert f"Default: {UNSET if default is None else default}." in text, name
    # a flag's text reads as the command line is typed, not as JSON (null)
    for command in ("train", "sweep"):
        assert "null" not in help_of(command, capsys).lower(), command


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--epochs", "0", "epochs"),
        ("--lr", "fast", "lr"),
        ("--dataset", "mnist", "dataset"),
        ("--image-size", "12.5", "image_size"),
        ("--optimizer", "adam", "optimizer"),
    ],
)
def test_a_bad_flag_value_gets_the_message_run_config_gives(
    flag: str, value: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message the run request gives the same value in a JSON body (the API's 422 `msg`;
    tests/service/test_api_requests.py compares with the running API)."""
    assert cli_main(["train", "--method", "simsiam", flag, value]) == 2
    stderr = capsys.readouterr().err.strip()
    body = {"method": "simsiam", field: parse_flag_value(RunConfig.model_fields[field], value)}
    with pytest.raises(ValidationError) as refused:
        RUN_REQUEST.validate_python(body)
    expected = error_message(refused.value.errors()[0])
    assert stderr == f"collapse-lab: error: simsiam.{field}: {expected}"


def test_a_rule_across_flags_is_said_as_its_own_sentence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pydantic words a validator's ValueError "Value error, <text>": the rule's text alone."""
    assert cli_main(["train", "--method", "simsiam", "--dataset", "imagefolder"]) == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr == (
        "collapse-lab: error: simsiam.dataset_path: dataset 'imagefolder' needs dataset_path"
    ), stderr


# The 2026 methods' own signals, one per method: present in the records the CLI writes.
NEW_METHOD_SIGNALS = {
    "dino": "teacher_entropy",
    "ijepa": "target_param_distance",
    "lejepa": "sigreg",
}


@pytest.mark.slow  # trains for more than a few seconds
@pytest.mark.parametrize("preset", sorted(NEW_METHOD_SIGNALS))
def test_the_2026_presets_train_from_the_command_line(
    preset: str, tmp_path: Path, cli_here: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = tmp_path / "run.jsonl"
    vit = ["--set", "vit_dim=48", "--set", "vit_depth=1", "--set", "image_size=16"]
    proc = cli_here(
        "train", "--preset", preset, "--epochs", "1", *TINY_SETS, *vit, "--jsonl", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()][:-1]
    assert [r["epoch"] for r in records] == [0, 1]
    assert NEW_METHOD_SIGNALS[preset] in records[1]["logs"]


@pytest.mark.slow  # trains for more than a few seconds
def test_a_sweep_over_a_2026_method_option(
    cli_here: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # the grid in the range form (start..stopxN), which every sweep once refused
    proc = cli_here(
        "sweep", "--preset", "lejepa", "--epochs", "1", *TINY_SETS, "--set", "image_size=16",
        "--grid", "sigreg_weight=0..0.05x2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "2 runs: sigreg_weight in [0.0, 0.05], seeds [0]"
    assert proc.stdout.splitlines()[-1].startswith("| verdict | ")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (False, "false"), (None, "null"), (0.05, "0.05"), (3, "3"), ("adam", "adam")],
)
def test_a_grid_value_is_shown_as_the_grid_takes_it(value: object, shown: str) -> None:
    """The sweep's table and map write each value as `--grid` takes it back (JSON for
    booleans, null and numbers; a name as it is, without quotes)."""
    assert _grid_value(value) == shown
    assert parse_grid_values(shown) == [value]


@pytest.mark.parametrize(
    "args", [["train", "--preset", "nope-of-the-plugin"], ["zoo", "--presets", "nope"]]
)
def test_an_unknown_name_is_said_beside_the_plugin_that_did_not_load(
    args: list[str], tmp_path: Path
) -> None:
    """A misspelt METHOD_PLUGINS module leaves its presets out: the refusal says why."""
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATA_DIR": str(tmp_path / "data"), "METHOD_PLUGINS": "no_such_mod"},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.endswith(
        "; plugin no_such_mod not loaded (ModuleNotFoundError: No module named 'no_such_mod')"
    ), line


def test_a_child_whose_launcher_died_before_it_asked_for_the_signal_exits_at_once() -> None:
    # the parent the child was spawned for is gone (here: no process has pid -1), so no
    # PR_SET_PDEATHSIG signal will come: the child must not go on to exec and outlive it
    orphan = subprocess.Popen(["sleep", "30"], preexec_fn=functools.partial(die_with_parent, -1))
    assert orphan.wait(10) == 1
    child = subprocess.Popen(["sleep", "30"], preexec_fn=dies_with_this_process())
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(0.5)  # its parent is alive: it runs
    finally:
        child.kill()
        child.wait(5)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--dataset-path", "nothere"], "vicreg.dataset_path: no folder 'nothere' in"),
        (["train", "--dataset-path", "/nonexistent"], "'/nonexistent' must be relative"),
        (
            ["zoo", "--presets", "simsiam", "--dataset-path", "nothere"],
            "simsiam.dataset_path: no folder 'nothere'",
        ),
        (["sweep", *GRID, "--dataset-path", "nothere"], "vicreg.dataset_path: no folder"),
    ],
)
def test_a_missing_image_folder_is_refused_before_anything_is_drawn(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, *rest = args
    chosen = ["--method", "vicreg"] if command != "zoo" else []
    status = cli_main(
        [command, "--data-dir", str(tmp_path), *chosen, "--dataset", "imagefolder", *rest]
    )
    captured = capsys.readouterr()
    assert status == 2  # a validation error, as the API's 422
    assert captured.out == ""  # no table header, no progress bar
    assert captured.err.startswith("collapse-lab: error: ") and needle in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def refused_by_argparse(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit:
        cli_main(args)
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    return " ".join(stderr.split())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["up", "--port", "-1"], "argument --port: -1 is not a port number (1 to 65535)"),
        (["up", "--port", "99999"], "argument --port: 99999 is not a port number"),
        (["up", "--port", "0"], "argument --port: 0 is not a port number"),
        (["up", "--port", "http"], "argument --port: 'http' is not a port number"),
        (["up", "--train-workers", "-1"], "argument --train-workers: -1: give 0 or more"),
        (["worker", "--cpu-workers", "-1"], "argument --cpu-workers: -1: give 0 or more"),
        (["worker", "--cpu-workers", "two"], "argument --cpu-workers: 'two' is not a whole"),
        (["worker", "--gpus", "0,0"], "argument --gpus: '0,0': a GPU is listed twice"),
        (["up", "--gpus", "first"], "argument --gpus: 'first': give all, none or GPU indices"),
        (["worker", "--gpus", ","], "argument --gpus: ',': give all, none or GPU indices"),
        (["up", "--gpus", "0,,1"], "argument --gpus: '0,,1': give all, none or GPU indices"),
        (["worker", "--gpus", "0,"], "argument --gpus: '0,': give all, none or GPU indices"),
    ],
)
def test_bad_launcher_numbers_are_refused_by_the_parser(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert needle in refused_by_argparse(args, capsys)


@pytest.mark.parametrize("command", ["train", "zoo", "sweep", "worker", "up"])
def test_a_data_dir_that_is_a_file_is_refused_before_anything_starts(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    shown = refused_by_argparse([command, "--data-dir", str(a_file), "--help"], capsys)
    assert f"argument --data-dir: '{a_file}' exists and is not a directory" in shown
    shown = refused_by_argparse(["--data-dir", str(a_file / "sub"), command], capsys)
    assert f"'{a_file / 'sub'}' is inside '{a_file}', which exists and is not a directory" in shown


def test_a_data_dir_variable_that_names_a_file_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("DATA_DIR", str(a_file))
    get_settings.cache_clear()
    try:
        shown = refused_by_argparse(["train", "--preset", "simsiam"], capsys)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert f"'{a_file}' exists and is not a directory" in shown


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``up``/``worker`` in this process that must refuse before they start a process (or
    touch this process's signal handlers)."""

    def refused(*_: object) -> None:
        raise AssertionError("started something before refusing")

    for name in ("spawn", "start_redis", "choose_redis", "stop_on_signals"):
        monkeypatch.setattr(launcher, name, refused)


def refusal(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``collapse-lab ARGS`` run in this process: exit status 1 and one line on stderr,
    which is returned."""
    assert cli_main(args) == 1
    stderr = capsys.readouterr().err
    command = next(arg for arg in args if arg in ("up", "worker"))
    assert stderr.startswith(f"collapse-lab {command}: error: ")
    assert len(stderr.strip().splitlines()) == 1
    return stderr


@pytest.mark.parametrize(
    ("visible", "args", "needle"),
    [
        ("", ["worker", "--gpus", "7"], "no GPU 7 on this host, which has no GPU"),
        ("0,1", ["worker", "--gpus", "1,2"], "no GPU 2 on this host, which has GPUs 0, 1"),
        ("0", ["up", "--gpus", "0,3"], "no GPU 3 on this host, which has GPUs 0"),
        ("", ["worker", "--gpus", "none", "--cpu-workers", "0"], "nothing to start"),
        ("", ["worker", "--cpu-workers", "0"], "nothing to start"),  # --gpus all: none here
        ("", ["up", "--gpus", "none", "--host", "999.1.1.1"], "--host '999.1.1.1' is no address"),
    ],
)
def test_up_and_worker_refuse_what_they_cannot_start(
    visible: str,
    args: list[str],
    needle: str,
    nothing_starts: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # CUDA_VISIBLE_DEVICES stands for the host's GPUs (as visible_gpus reads it first)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    data_dir = tmp_path / "data"
    assert needle in refusal(["--data-dir", str(data_dir), *args], capsys)
    assert not data_dir.exists()  # nothing made either


def test_up_refuses_a_data_directory_another_up_holds(
    nothing_starts: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whichever Redis the two would use (a shared one tells nothing of its users), the
    lock in the data directory refuses the second ``up`` before it starts anything."""
    data_dir = tmp_path / "data"
    held = hold_data_dir(data_dir)  # what the running `up` holds
    try:
        port = str(free_local_port())
        stderr = refusal(
            ["--data-dir", str(data_dir), "up", "--gpus", "none", "--port", port], capsys
        )
        assert "already runs with this data directory" in stderr
        assert f"(pid {os.getpid()})" in stderr
    finally:
        os.close(held)
    os.close(hold_data_dir(data_dir))  # free again once its holder is gone


@pytest.mark.parametrize(
    ("database_url", "needle"),
    [
        ("postgresql+psycopg://lab:secret@127.0.0.1:1/lab", "Connection refused"),
        ("not a url", "DATABASE_URL is not a database URL"),
        ("mysql://lab:secret@127.0.0.1/lab", "its driver is not installed (No module named"),
    ],
)
@pytest.mark.parametrize("command", ["up", "worker"])
def test_up_and_worker_name_a_database_they_cannot_use(
    command: str,
    database_url: str,
    needle: str,
    nothing_starts: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    get_settings.cache_clear()
    try:
        port = ["--port", str(free_local_port())] if command == "up" else []
        stderr = refusal(["--data-dir", str(tmp_path / "data"), command, *port], capsys)
    finally:
        get_settings.cache_clear()
    assert needle in stderr
    assert "secret" not in stderr  # the password stays out of the logs


def test_worker_names_a_redis_it_cannot_reach(
    nothing_starts: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:secret@127.0.0.1:{free_local_port()}/0")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'lab.db'}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    get_settings.cache_clear()
    try:
        stderr = refusal(["--data-dir", str(tmp_path / "data"), "worker"], capsys)
    finally:
        get_settings.cache_clear()
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in stderr
    assert "secret" not in stderr


def test_help_up_and_worker_do_not_load_torch() -> None:
    """torch takes seconds to import: the command line loads it only to train."""
    script = (
        "import sys\n"
        "from workers.cli import build_parser\n"
        "build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_up_names_a_remote_redis_that_does_not_answer_without_its_password() -> None:
    """``up`` starts only a local Redis; for any other the message shows the URL it read,
    the password hidden."""
    with pytest.raises(launcher.UpError) as refused:
        launcher.start_redis("redis://lab:secret@10.0.0.1:6380/2", Path("/nonexistent"))
    assert "Redis at redis://lab:***@10.0.0.1:6380/2 does not answer" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_a_one_class_image_folder_trains_without_a_knn_that_means_nothing(
    cli_here: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Unlabelled photos in one class folder are an image folder SSL trains on; a kNN over
    one label would read 1.000 whatever the embedding, so none is shown."""
    folder = tmp_path / "data" / "photos" / "all"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(40):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    proc = cli_here(
        "train", "--method", "simsiam", "--dataset", "imagefolder", "--dataset-path", "photos",
        "--epochs", "1", "--image-size", "16", *TINY_SETS, "--jsonl", "run.jsonl",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line[:5].strip() in ("0", "1")]
    assert [row[5] for row in rows] == ["—", "—"], proc.stdout  # the kNN(h) column
    records = [json.loads(line) for line in Path("run.jsonl").read_text().splitlines()[:-1]]
    assert [r["backbone"]["knn_top1"] for r in records] == [None, None]
