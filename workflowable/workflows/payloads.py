"""How Workflowable's messages become Temporal payloads: JSON a person can read in the web UI,
built without the default converter's generic walks.

Every process sends its plan, and each of its attempts an `ActivityInput` and an
`ActivityOutput`, through Temporal's converter. The default one encodes a dataclass with
`dataclasses.asdict` (a deep copy) and decodes it with `value_to_type`, which inspects the type
hints of every field of every nested value at each decode; on a busy worker that was a
noticeable share of its CPU (docs/performance.md). Here each message dataclass gets a decoder
built once from its fields, and is encoded field by field.

What is written differs from the default in two ways, both for the person reading a process in
the web UI or `temporal workflow show`: the fields come in the order the dataclass declares
them (the default sorts them, which put a plan's whole graph before its tokens), and a field
whose value is its default "nothing" (None, False, empty) is left out (an attempt's result
reads `{"outputs":{"approved":"yes"}}`, not six fields of nulls and falses). Decoding is by
name, and a missing field takes its default, so either side reads the other's payloads:
histories written before replay, and a worker of the previous release reads these. Figures
(a lease, a count of checks) are always written, so that a later default cannot change what a
recorded payload means; tests/unit/test_payloads.py pins the defaults that are left out.

Imported by the workers' data converter, inside the workflow sandbox and outside it: no I/O.
"""

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
)

from . import messages

Decode = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _decoder_for(hint: Any, decoders: dict[type, Decode]) -> Decode:
    """A function from the JSON value of a field of type `hint` to the field's value."""
    if hint in decoders:
        return decoders[hint]
    if hint is datetime:
        return datetime.fromisoformat
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _decoder_for(next(a for a in args if a is not type(None)), decoders)
        if inner is _identity:
            return _identity
        return lambda value: None if value is None else inner(value)
    if origin is list and args:
        item = _decoder_for(args[0], decoders)
        if item is not _identity:
            return lambda value: [item(v) for v in value]
        return _identity
    if hint is float:  # written as a whole number, it comes back from JSON as an int
        return float
    if hint in (int, str, bool, Any) or origin is dict:  # JSON gives these as they are
        return _identity
    raise TypeError(f"no fast decoder for a message field of type {hint!r}")


def _dataclass_decoder(cls: type, decoders: dict[type, Decode]) -> Decode:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _decoder_for(hints[f.name], decoders)) for f in dataclasses.fields(cls)]

    def decode(value: dict[str, Any]) -> Any:
        # Fields missing from the JSON (written before they existed) take their defaults.
        return cls(**{name: convert(value[name]) for name, convert in fields if name in value})

    return decode


def _message_classes() -> list[type]:
    """The dataclasses in messages.py, each after those it contains (definition order)."""
    return [value for value in vars(messages).values() if dataclasses.is_dataclass(value) and isinstance(value, type)]


_ALWAYS = object()  #: a field always written


def _left_out_at(f: dataclasses.Field[Any]) -> Any:
    """The value at which a field is left out: its default, if that default says "nothing"
    (None, False, empty). A field without a default, or whose default is a figure (a lease, a
    count of checks), is always written: a later release may change such a default, and a
    payload must decode to what was meant when it was written, or a replay would differ."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return _ALWAYS
    return default if default is None or default is False or default in ("", [], {}) else _ALWAYS


def _build() -> tuple[dict[type, Decode], dict[type, tuple[tuple[str, Any], ...]]]:
    decoders: dict[type, Decode] = {}
    fields: dict[type, tuple[tuple[str, Any], ...]] = {}
    for cls in _message_classes():
        decoders[cls] = _dataclass_decoder(cls, decoders)
        fields[cls] = tuple((f.name, _left_out_at(f)) for f in dataclasses.fields(cls))
    return decoders, fields


_DECODERS, _FIELDS = _build()


class _MessageTypes(JSONTypeConverter):
    """Decodes our message dataclasses with their prebuilt decoders; anything else is Temporal's."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        decode = _DECODERS.get(hint)
        if decode is None or not isinstance(value, dict):
            return JSONTypeConverter.Unhandled
        return decode(value)


class _MessageEncoder(AdvancedJSONEncoder):
    """Encodes a message field by field in declared order, leaving out those at their default
    "nothing" (nested messages come back here); no deep copy as `dataclasses.asdict` makes."""

    def default(self, o: Any) -> Any:
        fields = _FIELDS.get(type(o))
        if fields is None:
            return super().default(o)
        written = {}
        for name, default in fields:
            value = getattr(o, name)
            if default is _ALWAYS or value != default:
                written[name] = value
        return written


class _MessageJSON(JSONPlainPayloadConverter):
    """Temporal's `json/plain` converter, writing a message's fields unsorted (see above);
    any other value is written as Temporal writes it."""

    def to_payload(self, value: Any) -> Payload | None:
        if type(value) not in _FIELDS:
            return super().to_payload(value)
        data = json.dumps(value, cls=_MessageEncoder, separators=(",", ":")).encode()
        return Payload(metadata={"encoding": self.encoding.encode()}, data=data)


class MessagePayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converter with the JSON converter above in its place."""

    def __init__(self) -> None:
        fast_json = _MessageJSON(encoder=_MessageEncoder, custom_type_converters=[_MessageTypes()])
        super().__init__(
            *(
                fast_json if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
