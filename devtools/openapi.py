"""Complete the OpenAPI that protoc-gen-openapiv2 writes, from the same field options.

The field limits are declared once, as `openapiv2_field` options in the protos; the plugin
copies them into the OpenAPI's definitions and fitcore.validation enforces them at run time.
Three things the plugin (v2.32.0) leaves out are added here, read from the same options in the
descriptor set, so the OpenAPI says everything the API enforces:

- query and path parameters get only `pattern`, `enum` and `format`: their numeric and length
  limits (minimum, maximum, exclusive*, maxLength, minLength) are copied over;
- a declared `minimum: 0` (or `maximum: 0`) is the proto3 default and so never written: where
  `exclusiveMinimum` stands alone, the 0 it belongs to is put back;
- a `google.api.HttpBody` field (the legacy paths' raw JSON bodies) is described by its `ref`
  (and `type: ARRAY` for a bare array), or as any JSON object with `type: OBJECT` and no `ref`
  (the provider's webhook events), instead of as an HttpBody message;
- request bodies take no other keys than their fields (`additionalProperties: false`): Envoy's
  transcoder refuses an unknown JSON field with 400.

One thing is not in the options: the error body. The plugin states google.rpc.Status, which is
what the services answer; the replies Envoy makes itself (envoy/fitedge's local_reply_config:
no route, a body it cannot transcode, a refused token, a rate limit) carry the same keys with a
string as `details`, so the OpenAPI says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

JSON_SCHEMA = "grpc.gateway.protoc_gen_openapiv2.options.JSONSchema"
OPENAPIV2_FIELD = 1042  # extension number of openapiv2_field on FieldOptions
HTTP_BODY = "#/definitions/apiHttpBody"
VERBS = ("get", "put", "post", "delete", "patch")
_OPERATION_ID = re.compile(r"^(?P<service>[A-Za-z0-9]+)_(?P<method>[A-Za-z0-9]+?)\d*$")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _extension_bytes(options: bytes, number: int) -> bytes | None:
    """The payload of a length-delimited field in serialized options, known or not to this
    process's descriptor pool (so it does not matter what was imported before)."""
    pos = 0
    found = None
    while pos < len(options):
        key, pos = _varint(options, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(options, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(options, pos)
            if key >> 3 == number:
                found = options[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unexpected wire type {wire} in options")
    return found


class Contracts:
    """Messages, services and field options of a descriptor set."""

    def __init__(self, descriptor_set: Path) -> None:
        fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for file in fds.file:
            pool.Add(file)
        self.json_schema: type[Message] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(JSON_SCHEMA)
        )
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.services: dict[str, tuple[str, descriptor_pb2.ServiceDescriptorProto]] = {}
        for file in fds.file:
            self._index(file.package, file.message_type)
            for service in file.service:
                if service.name in self.services:
                    raise ValueError(f"two services named {service.name}: not supported")
                self.services[service.name] = (file.package, service)

    def _index(self, prefix: str, messages: Any) -> None:
        for message in messages:
            name = f"{prefix}.{message.name}"
            self.messages[name] = message
            self._index(name, message.nested_type)

    def field(self, message: str, path: list[str]) -> descriptor_pb2.FieldDescriptorProto | None:
        """The field at a dotted parameter path (`a.b`) of a message."""
        current = self.messages.get(message.lstrip("."))
        found = None
        for part in path:
            if current is None:
                return None
            found = next((f for f in current.field if f.name == part), None)
            if found is None:
                return None
            current = self.messages.get(found.type_name.lstrip(".")) if found.type_name else None
        return found

    def schema(self, field: descriptor_pb2.FieldDescriptorProto) -> Any | None:
        raw = _extension_bytes(field.options.SerializeToString(), OPENAPIV2_FIELD)
        return None if raw is None else self.json_schema.FromString(raw)

    def method(self, operation_id: str) -> tuple[str, descriptor_pb2.MethodDescriptorProto] | None:
        m = _OPERATION_ID.match(operation_id)
        if m is None or m["service"] not in self.services:
            return None
        package, service = self.services[m["service"]]
        method = next((x for x in service.method if x.name == m["method"]), None)
        return (package, method) if method is not None else None


def _http_rule(method: descriptor_pb2.MethodDescriptorProto, verb: str, path: str) -> Any:
    raw = _extension_bytes(method.options.SerializeToString(), annotations_pb2.http.number)
    if raw is None:
        return None
    rule = http_pb2.HttpRule.FromString(raw)
    for binding in [rule, *rule.additional_bindings]:
        if getattr(binding, verb, "") == path:
            return binding
    return None


def _limits(schema: Any, kind: str) -> dict[str, Any]:
    """The numeric or length limits of a JSONSchema option, as OpenAPI keywords."""
    out: dict[str, Any] = {}
    if kind in ("integer", "number"):
        if schema.minimum or schema.exclusive_minimum:
            out["minimum"] = _plain(schema.minimum)
            if schema.exclusive_minimum:
                out["exclusiveMinimum"] = True
        if schema.maximum or schema.exclusive_maximum:
            out["maximum"] = _plain(schema.maximum)
            if schema.exclusive_maximum:
                out["exclusiveMaximum"] = True
    elif kind == "string":
        if schema.max_length:
            out["maxLength"] = schema.max_length
        if schema.min_length:
            out["minLength"] = schema.min_length
    return out


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _definition_name(doc: dict[str, Any], message: str) -> str:
    package, _, name = message.lstrip(".").rpartition(".")
    parts = package.split(".")
    qualified = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + name
    for candidate in (f"{parts[-1]}{name}", qualified):
        if candidate in doc.get("definitions", {}):
            return candidate
    raise ValueError(f"{message} is referenced by an option but has no definition in the OpenAPI")


def _body_schema(doc: dict[str, Any], contracts: Contracts, message: str, field: str) -> Any:
    """The schema an HttpBody field declares with `ref` (and `type: ARRAY`), or None."""
    found = contracts.field(message, [field])
    schema = contracts.schema(found) if found is not None else None
    if schema is None:
        return None
    types = contracts.json_schema.JSONSchemaSimpleTypes  # type: ignore[attr-defined]
    if not schema.ref:
        # A raw JSON object of no message of ours (the payment provider's webhook events).
        return {"type": "object"} if types.Value("OBJECT") in schema.type else None
    ref = {"$ref": f"#/definitions/{_definition_name(doc, schema.ref)}"}
    array = types.Value("ARRAY")
    if array in schema.type:
        return {"type": "array", "items": ref}
    return ref


def _complete_operation(
    doc: dict[str, Any], contracts: Contracts, path: str, verb: str, op: dict[str, Any]
) -> None:
    found = contracts.method(op.get("operationId", ""))
    if found is None:
        return
    _, method = found
    for param in op.get("parameters", []):
        if param.get("in") in ("query", "path"):
            field = contracts.field(method.input_type, param["name"].split("."))
            schema = contracts.schema(field) if field is not None else None
            if schema is not None:
                param.update(_limits(schema, param.get("type", "")))
        elif param.get("in") == "body" and param.get("schema", {}).get("$ref") == HTTP_BODY:
            rule = _http_rule(method, verb, path)
            if rule is not None and rule.body and rule.body != "*":
                declared = _body_schema(doc, contracts, method.input_type, rule.body)
                if declared is not None:
                    param["schema"] = declared
    ok = op.get("responses", {}).get("200", {})
    if ok.get("schema", {}).get("$ref") == HTTP_BODY:
        rule = _http_rule(method, verb, path)
        if rule is not None and rule.response_body:
            declared = _body_schema(doc, contracts, method.output_type, rule.response_body)
            if declared is not None:
                ok["schema"] = declared


def _restore_zero_bounds(node: Any) -> None:
    """Put back the `minimum: 0` / `maximum: 0` that an exclusive bound belongs to."""
    if isinstance(node, dict):
        if node.get("exclusiveMinimum") is True and "minimum" not in node:
            node["minimum"] = 0
        if node.get("exclusiveMaximum") is True and "maximum" not in node:
            node["maximum"] = 0
        for value in node.values():
            _restore_zero_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _restore_zero_bounds(value)


def _close_request_bodies(doc: dict[str, Any]) -> None:
    """`additionalProperties: false` on every message a request body holds, nested ones too."""
    definitions = doc.get("definitions", {})
    prefix = "#/definitions/"
    todo = [
        ref
        for item in doc.get("paths", {}).values()
        for verb in VERBS
        for param in item.get(verb, {}).get("parameters", [])
        if param.get("in") == "body"
        for ref in _refs(param.get("schema", {}))
    ]
    done: set[str] = set()
    while todo:
        name = todo.pop()[len(prefix) :]
        schema = definitions.get(name)
        if name in done or schema is None or schema.get("type") != "object":
            continue
        done.add(name)
        schema["additionalProperties"] = False
        todo += [r for r in _refs(schema.get("properties", {})) if r.startswith(prefix)]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _drop_unreferenced(doc: dict[str, Any]) -> None:
    """Drop the definitions no operation reaches any more (the HttpBody wrappers replaced
    above), so the document holds no shape the API never sends."""
    definitions = doc.get("definitions", {})
    prefix = "#/definitions/"
    reached: set[str] = set()
    todo = [r for r in _refs(doc.get("paths", {})) if r.startswith(prefix)]
    while todo:
        name = todo.pop()[len(prefix) :]
        if name in reached or name not in definitions:
            continue
        reached.add(name)
        todo += [r for r in _refs(definitions[name]) if r.startswith(prefix)]
    for name in [n for n in definitions if n not in reached]:
        del definitions[name]


class _Dumper(yaml.SafeDumper):
    """Multi-line descriptions as YAML block text, as the plugin writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _describe_errors(doc: dict[str, Any]) -> None:
    status = doc.get("definitions", {}).get("rpcStatus")
    if status is None:
        return
    status["description"] = (
        "An error. From a service: google.rpc.Status as JSON, `code` the gRPC status code and "
        "`details` its rich details (BadRequest field violations, ErrorInfo, RetryInfo). From "
        "the edge itself (no route, a body it cannot transcode, a refused token, a rate limit): "
        "`code` the HTTP status and `details` a string naming the cause."
    )
    props = status.setdefault("properties", {})
    # No `type`: Swagger 2.0 has no oneOf for "an array of Any or a string".
    props["details"] = {
        "description": (
            "From a service, an array of google.protobuf.Any (JSON objects with an `@type`); "
            "from the edge, a string."
        )
    }
    props["request_id"] = {
        "type": "string",
        "x-nullable": True,
        "description": "The request id, also in the logs (null when the edge refused the "
        "request before giving it one).",
    }


def complete(openapi: Path, descriptor_set: Path) -> None:
    """Rewrite the generated OpenAPI file in place with what the plugin left out."""
    doc = yaml.safe_load(openapi.read_text())
    contracts = Contracts(descriptor_set)
    for path, item in doc.get("paths", {}).items():
        for verb in VERBS:
            if verb in item:
                _complete_operation(doc, contracts, path, verb, item[verb])
    _restore_zero_bounds(doc)
    _close_request_bodies(doc)
    _describe_errors(doc)
    _drop_unreferenced(doc)
    text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    openapi.write_text(text)
