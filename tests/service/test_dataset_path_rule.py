"""A ``dataset_path`` for a dataset that is not read from a folder: the API and the command
line refuse it alike, at the same field and with the same message (the rule lives in the run
contract, which both validate with), before anything is queued or trained."""

from __future__ import annotations

import httpx
import pytest

from tests.service.stack import ServiceStack
from workers.cli import main as cli_main


def test_the_api_and_the_command_line_refuse_a_dataset_path_for_digits_alike(
    idle_stack: ServiceStack, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"method": "simsiam", "dataset": "digits", "dataset_path": "pictures"}
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as api:
        before = api.get("/api/runs").json()["count"]
        response = api.post("/api/runs", json=body)
        assert api.get("/api/runs").json()["count"] == before, "nothing was queued"
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "simsiam", "dataset_path"]
    assert error["msg"] == "dataset_path is only for 'imagefolder'"

    flags = ["--method", "simsiam", "--dataset", "digits", "--dataset-path", "pictures"]
    assert cli_main(["train", *flags]) == 2
    refused = capsys.readouterr().err.strip()
    assert refused == f"collapse-lab: error: simsiam.dataset_path: {error['msg']}"


def test_the_api_and_the_command_line_refuse_a_path_out_of_the_data_directory_alike(
    idle_stack: ServiceStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule the server checks after the contract (backend/validation.py): the command line
    refuses it as a validation error too (exit status 2 at the field, once exit 1 unlocated)."""
    body = {"method": "simsiam", "dataset": "imagefolder", "dataset_path": "../../etc"}
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as api:
        response = api.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "simsiam", "dataset_path"]

    flags = ["--method", "simsiam", "--dataset", "imagefolder", "--dataset-path", "../../etc"]
    assert cli_main(["train", *flags]) == 2
    refused = capsys.readouterr().err.strip()
    assert refused == f"collapse-lab: error: simsiam.dataset_path: {error['msg']}"
