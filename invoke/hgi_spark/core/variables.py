"""A root module's declared variables, read with python-hcl2, turned into a pydantic model.

The module's ``variables.tf`` is the single home of each input's name and type: the YAML is
checked against it before terraform runs, so a typo or a wrong type is one line naming the file
and the key rather than a terraform error after init.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictStr, create_model

from .errors import ConfigError, first_line
from .layout import cache_dir

CACHE_VERSION = 1


@dataclass(frozen=True)
class Variable:
    """One ``variable`` block: what the wrapper needs to know about it."""

    name: str
    type_expr: str
    required: bool
    sensitive: bool
    description: str
    nullable: bool = True


def _unquote(text: Any) -> Any:
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _strip_interpolation(text: str) -> str:
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return text


def read_variables(module_dir: Path) -> dict[str, Variable]:
    """Every variable declared in the module's ``*.tf`` files.

    Parsing HCL is the slowest part of a task's start (python-hcl2 builds its parser each time), so
    the result is kept in the user's cache, keyed by the digest of the files' names and contents.
    """
    files = sorted(module_dir.resolve().glob("*.tf"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return dict(_read_variables_cached(tuple(files), digest.hexdigest()))


def _cache_file(digest: str) -> Path:
    return cache_dir() / "variables" / f"{digest}.json"


@lru_cache(maxsize=16)
def _read_variables_cached(files: tuple[Path, ...], digest: str) -> tuple[tuple[str, Variable], ...]:
    cache = _cache_file(digest)
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("version") == CACHE_VERSION:
            return tuple((name, Variable(**fields)) for name, fields in cached["variables"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _parse(files)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".variables-", dir=cache.parent)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"version": CACHE_VERSION, "variables": [[n, asdict(v)] for n, v in found]}, handle)
        os.replace(temporary, cache)
    except OSError:
        pass  # a read-only cache only costs time
    return found


def _parse(files: tuple[Path, ...]) -> tuple[tuple[str, Variable], ...]:
    import hcl2

    found: dict[str, Variable] = {}
    for tf_file in files:
        try:
            with tf_file.open(encoding="utf-8") as handle:
                parsed = hcl2.load(handle)
        except Exception as error:  # python-hcl2 raises lark errors of many kinds
            raise ConfigError(f"cannot parse HCL: {first_line(error)}", file=tf_file) from None
        for block in parsed.get("variable", []):
            for raw_name, body in block.items():
                name = _unquote(raw_name)
                found[name] = Variable(
                    name=name,
                    type_expr=_strip_interpolation(str(body.get("type", "any"))),
                    required="default" not in body,
                    sensitive=bool(body.get("sensitive", False)),
                    description=str(_unquote(body.get("description", ""))),
                    nullable=body.get("nullable", True) not in (False, "false"),
                )
    return tuple(found.items())


# --- HCL type expressions -> Python types -------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<punct>[(){}\[\],=:])|(?P<string>"(?:[^"\\]|\\.)*")|(?P<other>[^\s(){}\[\],=:"]+))'
)


class _Parser:
    """Recursive-descent reader of terraform type constraints: string, number, bool, any,
    list/set/map(T), tuple([T...]), object({k = T, k = optional(T[, default])})."""

    def __init__(self, text: str, where: str) -> None:
        self.tokens = [m.group(m.lastgroup) for m in _TOKEN.finditer(text) if m.group(m.lastgroup)]
        self.pos = 0
        self.where = where
        self.text = text

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> str:
        token = self._peek()
        if token is None:
            raise self._error("unexpected end")
        self.pos += 1
        return token

    def _expect(self, token: str) -> None:
        got = self._next()
        if got != token:
            raise self._error(f"expected '{token}', got '{got}'")

    def _error(self, problem: str) -> ConfigError:
        return ConfigError(f"unsupported variable type '{self.text}': {problem}", file=self.where)

    def parse(self) -> Any:
        result = self.type_()
        if self._peek() is not None:
            raise self._error(f"trailing '{self._peek()}'")
        return result

    def type_(self) -> Any:
        name = self._next()
        if name == "string":
            return StrictStr
        if name == "number":
            return StrictFloat  # accepts integers, rejects booleans and strings
        if name == "bool":
            return StrictBool
        if name == "any":
            return Any
        if name in ("list", "set", "map"):
            self._expect("(")
            inner = self.type_()
            self._expect(")")
            return dict[str, inner] if name == "map" else list[inner]
        if name == "tuple":
            self._expect("(")
            self._skip_balanced()
            self._expect(")")
            return list[Any]
        if name == "object":
            self._expect("(")
            self._expect("{")
            fields: dict[str, Any] = {}
            while self._peek() != "}":
                key = _unquote(self._next())
                if self._peek() in ("=", ":"):
                    self._next()
                fields[key] = self.attribute()
                if self._peek() == ",":
                    self._next()
            self._expect("}")
            self._expect(")")
            model = create_model(  # type: ignore[call-overload]
                "Object", __config__=ConfigDict(extra="forbid"), **fields
            )
            return model
        raise self._error(f"unknown type '{name}'")

    def attribute(self) -> tuple[Any, Any]:
        if self._peek() == "optional":
            self._next()
            self._expect("(")
            inner = self.type_()
            if self._peek() == ",":
                self._next()
                self._skip_balanced()
            self._expect(")")
            return (inner | None, None)
        return (self.type_(), ...)

    def _skip_balanced(self) -> None:
        """Skip one expression (e.g. an optional default) up to a ',' or ')' at this depth."""
        depth = 0
        while True:
            token = self._peek()
            if token is None:
                raise self._error("unbalanced brackets")
            if depth == 0 and token in (",", ")"):
                return
            if token in "([{":
                depth += 1
            elif token in ")]}":
                depth -= 1
            self._next()


def python_type(type_expr: str, *, where: str) -> Any:
    """The pydantic-checkable type of a terraform type constraint."""
    return _Parser(type_expr, where).parse()


def model_for(variables: dict[str, Variable], names: list[str], *, where: str) -> type[BaseModel]:
    """A strict model of the named variables (the ones the YAML sets), unknown keys forbidden."""
    fields: dict[str, Any] = {}
    for name in names:
        declared = python_type(variables[name].type_expr, where=where)
        fields[name] = (declared | None if variables[name].nullable else declared, ...)
    return create_model(  # type: ignore[call-overload]
        "DeploymentVariables", __config__=ConfigDict(extra="forbid"), **fields
    )
