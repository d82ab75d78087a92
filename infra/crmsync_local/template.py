"""Reads template.yaml (the one truth) into what the local stack needs.

Intrinsic functions are resolved against local physical names: a Ref to a table gives the
local table name, a Ref to a queue its local URL, GetAtt .Arn a local ARN, and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT = "123456789012"


class TemplateError(ValueError):
    """The template uses something the local stack cannot reproduce."""


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError(f"{path} is not a template")
    return data


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, parameters: dict[str, str] | None = None) -> Template:
        body = load_yaml(path)
        values = {
            name: str(spec["Default"])
            for name, spec in body.get("Parameters", {}).items()
            if "Default" in spec
        }
        values.update(parameters or {})
        missing = set(body.get("Parameters", {})) - set(values)
        if missing:
            raise TemplateError(f"parameters without a value: {sorted(missing)}")
        return cls(path=path, body=body, parameters=values)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resources(self, *types: str) -> dict[str, dict[str, Any]]:
        return {
            name: res
            for name, res in self.body.get("Resources", {}).items()
            if not types or res["Type"] in types
        }

    def globals_for_functions(self) -> dict[str, Any]:
        return dict(self.body.get("Globals", {}).get("Function", {}))

    # -- intrinsic functions -------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        handler = _INTRINSICS.get(key)
        if handler is None:
            return {key: self.resolve(arg)}
        return handler(self, arg)

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": "crmsync-local",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return str(self.physical[name]["Ref"])
        raise TemplateError(f"cannot resolve Ref {name} locally")

    def _getatt(self, arg: list[str]) -> str:
        name, attr = arg[0], arg[1]
        attrs = self.physical.get(name)
        if attrs is None or attr not in attrs:
            raise TemplateError(f"cannot resolve GetAtt {name}.{attr} locally")
        return attrs[attr]

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        extra = {k: str(self.resolve(v)) for k, v in extra.items()}

        def repl(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in extra:
                return str(extra[token])
            if "." in token:
                return self._getatt(token.split(".", 1))
            return self._ref(token)

        return re.sub(r"\$\{([^}]+)\}", repl, str(text))

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.body.get("Conditions", {})[name]))


def _if(t: Template, arg: list[Any]) -> Any:
    return t.resolve(arg[1] if t.condition(arg[0]) else arg[2])


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda t, a: t._ref(a),
    "Fn::GetAtt": lambda t, a: t._getatt(a if isinstance(a, list) else a.split(".", 1)),
    "Fn::Sub": lambda t, a: t._sub(a),
    "Fn::Join": lambda t, a: str(a[0]).join(str(t.resolve(v)) for v in a[1]),
    "Fn::Select": lambda t, a: t.resolve(a[1])[int(t.resolve(a[0]))],
    "Fn::If": _if,
    "Fn::Not": lambda t, a: not t.resolve(a[0]),
    "Fn::Equals": lambda t, a: t.resolve(a[0]) == t.resolve(a[1]),
    "Fn::And": lambda t, a: all(t.resolve(v) for v in a),
    "Fn::Or": lambda t, a: any(t.resolve(v) for v in a),
}
