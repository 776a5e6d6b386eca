"""StepSpec / StepResult match the checked-in v0.1 JSON Schemas, field for field."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends import (
    RunOptions,
    StepResult,
    StepSpec,
    execution_backend_from_env,
)
from agentic_orchestration.orchestration.backends.factory import BACKENDS

DATA = Path(__file__).parent / "data"


def load_schema(name: str) -> dict:
    text = resources.files("agentic_orchestration.schemas").joinpath(name).read_text()
    return json.loads(text)


@pytest.mark.parametrize(
    ("schema_name", "model", "example"),
    [
        ("step_spec.v0.1.json", StepSpec, "step_spec_v0.1_example.json"),
        ("step_result.v0.1.json", StepResult, "step_result_v0.1_example.json"),
    ],
)
def test_spec_page_example_validates_and_round_trips(schema_name, model, example):
    schema = load_schema(schema_name)
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads((DATA / example).read_text())
    jsonschema.validate(doc, schema)
    parsed = model.from_dict(doc)
    dumped = parsed.to_dict()
    jsonschema.validate(dumped, schema)
    for key, value in doc.items():
        if isinstance(value, dict) and key in {"timing", "k8s", "task", "paths", "inputs"}:
            for sub_key, sub_value in value.items():
                assert dumped[key][sub_key] == sub_value
        else:
            assert dumped[key] == value


@pytest.mark.parametrize(
    ("schema_name", "model"),
    [("step_spec.v0.1.json", StepSpec), ("step_result.v0.1.json", StepResult)],
)
def test_model_fields_equal_schema_properties(schema_name, model):
    schema = load_schema(schema_name)
    assert set(model.model_fields) == set(schema["properties"])
    model_required = {n for n, f in model.model_fields.items() if f.is_required()}
    schema_required = set(schema["required"]) - {"schema_version"}
    assert model_required <= schema_required | {"task", "agent_provider"}
    assert schema_required <= model_required | {"exit_code"}


def test_failure_result_matches_schema():
    result = StepResult(run_id="r1", step_id="step_1", exit_code=1,
                        error="HTTP 500", recoverable=True, recovery_hint="hf_litellm_fallback")
    jsonschema.validate(result.to_dict(), load_schema("step_result.v0.1.json"))


def test_schema_rejects_wrong_version_and_unknown_field():
    schema = load_schema("step_result.v0.1.json")
    doc = StepResult(run_id="r", step_id="s").to_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "schema_version": "0.2"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "surprise": 1}, schema)


def test_run_options_generates_run_id():
    assert RunOptions().run_id != RunOptions().run_id
    assert RunOptions(run_id="abc").run_id == "abc"


def test_backend_factory_default_unknown_and_unbuilt(monkeypatch):
    assert execution_backend_from_env().name == "inprocess"
    monkeypatch.setenv("AGENTIC_EXECUTION_BACKEND", "argo")
    with pytest.raises(BackendError) as err:
        execution_backend_from_env()
    for known in BACKENDS:
        assert known in str(err.value)
    unbuilt = [name for name, target in BACKENDS.items() if target is None]
    for name in unbuilt:
        with pytest.raises(BackendError, match="not built yet"):
            execution_backend_from_env(name)
