"""The methods of ``handoff/1``, read from the generated service descriptors.

Nothing here is written by hand per method: the request and response classes
and the call shape (unary or server streaming) of every
``handoff.v1.<Service>/<Method>`` come from the ``*_pb2`` modules that
``scripts/generate`` makes from ``proto/handoff/v1``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Dict, Type

from google.protobuf import message_factory
from google.protobuf.message import Message

import handoff.v1


@dataclass(frozen=True)
class MethodInfo:
    """One RPC: its wire name, message classes and shape."""

    name: str  # "handoff.v1.Sessions/UpdateState"
    request: Type[Message]
    response: Type[Message]
    server_streaming: bool


def _load() -> Dict[str, MethodInfo]:
    methods: Dict[str, MethodInfo] = {}
    for module_info in pkgutil.iter_modules(handoff.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"handoff.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.client_streaming:
                    continue  # handoff/1 has none
                name = f"{service.full_name}/{method.name}"
                methods[name] = MethodInfo(
                    name=name,
                    request=message_factory.GetMessageClass(method.input_type),
                    response=message_factory.GetMessageClass(method.output_type),
                    server_streaming=method.server_streaming,
                )
    return methods


#: Every method of handoff/1 by its wire name.
METHODS: Dict[str, MethodInfo] = _load()


def method(name: str) -> MethodInfo:
    """The method named ``handoff.v1.<Service>/<Method>`` (KeyError when unknown)."""
    return METHODS[name]
