"""The generated OpenAPI states the limits the contracts declare (and fitcore.validation
enforces), including where protoc-gen-openapiv2 leaves them out (devtools/openapi.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devtools.openapi import Contracts
from devtools.paths import DESCRIPTOR_SET, GEN_OPENAPI


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(yaml.safe_load((GEN_OPENAPI / "fitco.swagger.yaml").read_text()))


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}


def test_every_declared_parameter_limit_is_in_the_openapi(doc: dict[str, Any]) -> None:
    contracts = Contracts(DESCRIPTOR_SET)
    missing = []
    for op_id, op in _operations(doc).items():
        found = contracts.method(op_id)
        assert found is not None, op_id
        _, method = found
        for param in op.get("parameters", []):
            if param["in"] not in ("query", "path"):
                continue
            field = contracts.field(method.input_type, param["name"].split("."))
            schema = contracts.schema(field) if field is not None else None
            if schema is None:
                continue
            # int64 is a string in proto3 JSON: JSON Schema has no numeric bounds for one.
            numeric = param.get("type") in ("integer", "number")
            declared = {
                "minimum": (schema.minimum or None) if numeric else None,
                "maximum": (schema.maximum or None) if numeric else None,
                "maxLength": schema.max_length or None,
                "pattern": schema.pattern or None,
                "format": schema.format or None,
            }
            for key, value in declared.items():
                if value is not None and param.get(key) != value:
                    missing.append(f"{op_id} {param['name']}: {key} {value}")
    assert not missing, missing


def test_examples_of_completed_limits(doc: dict[str, Any]) -> None:
    ops = _operations(doc)
    params = {p["name"]: p for p in ops["CatalogService_ListExercises"]["parameters"]}
    assert (params["difficulty"]["minimum"], params["difficulty"]["maximum"]) == (1, 5)
    assert params["page_token"]["maxLength"] == 256
    history = doc["definitions"]["v1RecordExerciseRequest"]["properties"]
    # A declared `exclusive_minimum` above 0: the plugin drops the 0 (a proto3 default).
    assert (history["weight_kg"]["minimum"], history["weight_kg"]["exclusiveMinimum"]) == (0, True)


def test_legacy_raw_bodies_are_described_as_what_they_hold(doc: dict[str, Any]) -> None:
    ops = _operations(doc)

    def ok(op_id: str) -> Any:
        return ops[op_id]["responses"]["200"]["schema"]

    assert ok("LegacyService_ListExercises") == {
        "type": "array",
        "items": {"$ref": "#/definitions/v1Exercise"},
    }
    assert ok("LegacyService_GetExercise") == {"$ref": "#/definitions/v1Exercise"}
    assert ok("LegacyService_GetProfile") == {"$ref": "#/definitions/v1Profile"}
    assert ok("LegacyService_ListUsers")["items"] == {"$ref": "#/definitions/v1User"}
    body = next(p for p in ops["UserService_IssueToken"]["parameters"] if p["in"] == "body")
    assert body["schema"] == {"$ref": "#/definitions/v1LoginRequest"}
    assert "apiHttpBody" not in doc["definitions"]  # no operation sends or answers one


def test_errors_are_described_as_both_layers_answer_them(doc: dict[str, Any]) -> None:
    status = doc["definitions"]["rpcStatus"]
    assert "type" not in status["properties"]["details"]  # an array, or the edge's string
    assert status["properties"]["request_id"]["x-nullable"] is True


def test_request_bodies_take_only_their_fields(doc: dict[str, Any]) -> None:
    """Envoy's transcoder refuses an unknown JSON field: the OpenAPI says so."""
    definitions = doc["definitions"]
    for name in ("v1RegisterUserRequest", "v1Preferences", "v1LogoutRequest"):
        assert definitions[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in definitions["v1Profile"]  # a response only
