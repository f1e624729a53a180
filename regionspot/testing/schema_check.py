"""Check JSON data against a JSON Schema, for tests: ``jsonschema`` when installed, else a small checker of
the keywords our schemas use (type, const, enum, required, properties, additionalProperties, items,
minItems, maxItems, minimum, maximum, anyOf, local $ref)."""

from __future__ import annotations

from typing import Any

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"$schema", "$id", "title", "description", "$defs", "type", "const", "enum", "required", "properties",
          "additionalProperties", "items", "minItems", "maxItems", "minimum", "maximum", "anyOf", "$ref"}


def schema_errors(data: Any, schema: dict, root: dict | None = None, where: str = "$") -> list[str]:
    """Every place where ``data`` breaks ``schema`` (empty: valid), as "path: problem" lines."""
    root = schema if root is None else root
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema_errors does not know the keywords {sorted(unknown)}")
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(data, target, root, where)
    if "anyOf" in schema:
        if all(schema_errors(data, option, root, where) for option in schema["anyOf"]):
            return [f"{where}: matches none of anyOf"]
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](data) for k in kinds):
            return [f"{where}: {type(data).__name__} is not {'/'.join(kinds)}"]
    if "const" in schema and data != schema["const"]:
        errors.append(f"{where}: {data!r} is not {schema['const']!r}")
    if "enum" in schema and data not in schema["enum"]:
        errors.append(f"{where}: {data!r} is not one of {schema['enum']}")
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        if "minimum" in schema and data < schema["minimum"]:
            errors.append(f"{where}: {data} < {schema['minimum']}")
        if "maximum" in schema and data > schema["maximum"]:
            errors.append(f"{where}: {data} > {schema['maximum']}")
    if isinstance(data, dict):
        properties = schema.get("properties", {})
        errors += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in data]
        for key, value in data.items():
            if key in properties:
                errors += schema_errors(value, properties[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{where}: unexpected key {key!r}")
    if isinstance(data, list):
        if len(data) < schema.get("minItems", 0) or len(data) > schema.get("maxItems", len(data)):
            errors.append(f"{where}: {len(data)} items")
        if "items" in schema:
            for i, item in enumerate(data):
                errors += schema_errors(item, schema["items"], root, f"{where}[{i}]")
    return errors


def check_against_schema(data: Any, schema: dict) -> None:
    """Raise AssertionError naming the problems when ``data`` does not satisfy ``schema``."""
    try:
        import jsonschema
    except ImportError:
        errors = schema_errors(data, schema)
        assert not errors, "; ".join(errors[:10])
    else:
        jsonschema.validate(data, schema)
