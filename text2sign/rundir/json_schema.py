"""JSON Schema from dataclasses, and the validation of JSON data against it.

A dataclass is an object; its fields are its keys, each of its type (int, float, str, bool,
None, Literal, unions, list[...], dict[str, ...], Any or another dataclass) and described by
the field's metadata["doc"]. Two optional class attributes: `REQUIRED`, the keys a value may
not lack (all by default), and `READ_EXTRA`, the type of keys it does not declare that a
reader accepts (`reading=True`: declared keys may then be missing).

Written here rather than taken from pydantic's `TypeAdapter(Results).json_schema()`, whose
output differs (pydantic 2.14: a title per key, `$defs` references, `anyOf` for each optional
key, no key required, the docs in field metadata dropped) and is one schema where the run
directory needs two: the writer's, which refuses a key it does not declare, and the reader's,
which accepts `READ_EXTRA`. pydantic is not a dependency of the project either; a validator
of ours, a few lines more, checks the files against exactly the schema that is published.
"""

from __future__ import annotations

import json
import types
from dataclasses import fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean",
               type(None): "null"}


def schema_of(hint: Any, reading: bool = False) -> dict[str, Any]:
    """The JSON Schema of a type: what a writer must give, or (`reading`) what a reader takes."""
    if hint is Any:
        return {}
    if is_dataclass(hint):
        return _object_schema(hint, reading)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [schema_of(arg, reading) for arg in args]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if origin is list:
        items = schema_of(args[0], reading)
        return {"type": "array", **({"items": items} if items else {})}
    if origin is dict:
        values = schema_of(args[1], reading)
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    return {"type": _JSON_TYPES[hint]}


def _object_schema(section: type, reading: bool = False) -> dict[str, Any]:
    """The JSON Schema of a dataclass."""
    hints = get_type_hints(section)
    properties = {}
    for f in fields(section):
        properties[f.name] = schema_of(hints[f.name], reading)
        if f.metadata.get("doc"):
            properties[f.name]["description"] = f.metadata["doc"]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if section.__doc__ and not section.__doc__.startswith(section.__name__):
        schema["description"] = section.__doc__.strip()
    if reading:  # keys added since may be missing; others' keys allowed, of their type
        extra = schema_of(getattr(section, "READ_EXTRA", Any), reading)
        if extra:
            schema["additionalProperties"] = extra
        return schema
    required = getattr(section, "REQUIRED", list(properties))  # written: these, nothing else
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    return schema


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What is wrong with `value` under `schema` (the subset json_schema emits)."""
    if "const" in schema or "enum" in schema:
        allowed = [schema["const"]] if "const" in schema else schema["enum"]
        if not any(type(value) is type(a) and value == a for a in allowed):
            return [_wrong(path, value, describe(schema))]
        return []
    if "anyOf" in schema:
        if any(not validate(value, option) for option in schema["anyOf"]):
            return []
        return [_wrong(path, value, describe(schema))]
    if "type" in schema and _json_type(value) not in _listed(schema["type"]):
        if not (_json_type(value) == "integer" and "number" in _listed(schema["type"])):
            return [_wrong(path, value, describe(schema))]
    if isinstance(value, list) and "items" in schema:
        return [e for i, item in enumerate(value)
                for e in validate(item, schema["items"], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    errors = [f"{_join(path, key)} is missing" for key in schema.get("required", ())
              if key not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += validate(item, properties[key], _join(path, key))
        elif extra is False:
            errors.append(f"{_join(path, key)} is not a key of the schema")
        elif isinstance(extra, dict):
            errors += validate(item, extra, _join(path, key))
    return errors


def describe(schema: dict[str, Any]) -> str:
    """The values a schema allows, in words."""
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        *rest, last = schema["enum"]
        return f"text: {', '.join(rest)} or {last}"
    if "anyOf" in schema:
        return _either([describe(option) for option in schema["anyOf"]])
    kinds = _listed(schema.get("type", []))
    words = [word for kind in kinds for word in _WORDS[kind]]
    inner = schema.get("items") or schema.get("additionalProperties")
    inner_kind = inner.get("type") if isinstance(inner, dict) else None
    if len(kinds) == 1 and isinstance(inner_kind, str) and inner_kind in _PLURALS:
        words = [f"{words[0]} of {_PLURALS[inner_kind]}"]  # "a list of integers"
    return _either(words) or "anything"


_WORDS = {"integer": ["an integer"], "number": ["a number"], "string": ["text"],
          "boolean": ["true", "false"], "null": ["null"], "object": ["an object"],
          "array": ["a list"]}
_PLURALS = {"integer": "integers", "number": "numbers", "string": "texts", "object": "objects"}


def _either(options: list[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    return " or ".join(filter(None, (", ".join(options[:-1]), options[-1]))) if options else ""


def _json_type(value: Any) -> str:
    """The JSON type json.dumps writes `value` as (bool before int: True is an int)."""
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                       (dict, "object"), ((list, tuple), "array"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _listed(kinds: str | list[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else kinds


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _wrong(path: str, value: Any, expected: str) -> str:
    return f"{path} is {value!r:.60} ({type(value).__name__}), expected {expected}"
