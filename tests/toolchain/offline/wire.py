"""Pulumi's property wire format, as the offline-plugin tests build and read it."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2

SIG = "4dabf18193072939515e22adb298388d"  # key that marks a special value
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def secret(value):
    return {SIG: SECRET_SIG, "value": value}


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def plain(value):
    return value["value"] if is_secret(value) else value


def to_struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def from_struct(s) -> dict:
    return json_format.MessageToDict(s)
