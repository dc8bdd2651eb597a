"""Render the Dispa Helm chart without helm, for the tests (no helm binary here).

This implements the part of Go's text/template and Helm's functions that the chart in
deploy/helm/dispa uses, and nothing more: actions with trim markers, comments, ``if`` /
``else``, ``range`` (with a variable), ``define`` / ``include``, variables, pipelines,
parenthesized calls and the functions in ``FUNCTIONS``. It is stricter than Helm in one
way on purpose: a ``.Values`` path that does not exist is an error, so a misspelled key
fails the tests instead of rendering as an empty string.

``python tests/unit/deploy/chart_renderer.py`` writes the plain manifests in
deploy/kubernetes/: dispa.yaml (the chart rendered with its default values, using the
Secret dispa-cluster), secret.yaml (that Secret, with a placeholder to replace) and
edge-daemonset.yaml (the edges as a DaemonSet instead of a Deployment); a test checks
that the committed files are what the chart renders.
"""

from __future__ import annotations

import base64
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "dispa"
PLAIN_MANIFESTS = REPO / "deploy" / "kubernetes" / "dispa.yaml"
PLAIN_DAEMONSET = REPO / "deploy" / "kubernetes" / "edge-daemonset.yaml"
PLAIN_SECRET = REPO / "deploy" / "kubernetes" / "secret.yaml"
PLACEHOLDER_SECRET = "REPLACE-ME-with-the-output-of-openssl-rand-base64-32"
PLAIN_RELEASE = {"Name": "dispa", "Namespace": "dispa", "Service": "kubectl"}


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------- lexing and parsing

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipeline: str


@dataclass
class Block:
    kind: str  # if | range | define
    argument: str
    body: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", s) in order, with trim markers applied to the text."""
    tokens: list[tuple[str, str]] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", match.group(2).strip()))
        trim_next = bool(match.group(3))
        position = match.end()
    tail = source[position:]
    tokens.append(("text", tail.lstrip() if trim_next else tail))
    return tokens


def parse(source: str) -> tuple[list, dict[str, list]]:
    """The template's nodes and the templates it defines."""
    defines: dict[str, list] = {}
    root: list = []
    stack: list[tuple[Block | None, list]] = [(None, root)]
    for kind, value in _tokens(source):
        block, nodes = stack[-1]
        if kind == "text":
            if value:
                nodes.append(Text(value))
            continue
        if value.startswith("/*"):
            continue
        word, _, rest = value.partition(" ")
        if word in ("if", "range", "define"):
            new = Block(word, rest.strip())
            nodes.append(new)
            stack.append((new, new.body))
        elif word == "else":
            if block is None or block.kind != "if" or rest.strip():
                raise TemplateError(f"unsupported else: {{{{ {value} }}}}")
            stack[-1] = (block, block.otherwise)
        elif word == "end":
            if block is None:
                raise TemplateError("{{ end }} without a block")
            stack.pop()
            if block.kind == "define":
                stack[-1][1].remove(block)
                defines[_string_literal(block.argument)] = block.body
        else:
            nodes.append(Action(value))
    if len(stack) != 1:
        raise TemplateError(f"{{{{ {stack[-1][0].kind} }}}} is never closed with {{{{ end }}}}")
    return root, defines


def _string_literal(text: str) -> str:
    if not (text.startswith('"') and text.endswith('"')):
        raise TemplateError(f"expected a quoted name, got {text!r}")
    return text[1:-1]


# ---------------------------------------------------------------- expressions

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:\\.|[^"\\])*")|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>\.(?:[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)?)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>:=|\||\(|\)))"
)


def _lex_expression(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise TemplateError(f"cannot read {text[position:]!r} in {{{{ {text} }}}}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class Renderer:
    def __init__(self, defines: dict[str, list]) -> None:
        self.defines = defines

    # -- nodes ----------------------------------------------------------------------

    def run(self, nodes: list, dot: Any, root: Any, scopes: list[dict]) -> str:
        out = []
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipeline, dot, root, scopes, declare=True)
                if value is not _DECLARED:
                    out.append(_print(value))
            elif node.kind == "if":
                condition = self.pipeline(node.argument, dot, root, scopes)
                branch = node.body if _truthy(condition) else node.otherwise
                out.append(self.run(branch, dot, root, [*scopes, {}]))
            elif node.kind == "range":
                out.append(self.range(node, dot, root, scopes))
        return "".join(out)

    def range(self, node: Block, dot: Any, root: Any, scopes: list[dict]) -> str:
        names, _, expression = node.argument.rpartition(":=")
        items = self.pipeline(expression.strip(), dot, root, scopes)
        names = [name.strip() for name in names.split(",") if name.strip()]
        out = []
        pairs = items.items() if isinstance(items, dict) else enumerate(items or [])
        for key, item in pairs:
            scope: dict[str, Any] = {}
            if len(names) == 1:
                scope[names[0]] = item
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, item
            out.append(self.run(node.body, item, root, [*scopes, scope]))
        return "".join(out)

    def include(self, name: str, context: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"include of undefined template {name!r}")
        return self.run(self.defines[name], context, context, [{}])

    # -- pipelines --------------------------------------------------------------------

    def pipeline(self, text: str, dot, root, scopes, declare: bool = False):
        tokens = _lex_expression(text)
        target = None
        if len(tokens) >= 2 and tokens[0][0] == "variable" and tokens[1] == ("punct", ":="):
            if not declare:
                raise TemplateError(f"a declaration is not allowed here: {text}")
            target, tokens = tokens[0][1], tokens[2:]
        value, position = self._pipe(tokens, 0, dot, root, scopes)
        if position != len(tokens):
            raise TemplateError(f"unexpected {tokens[position][1]!r} in {{{{ {text} }}}}")
        if target is not None:
            scopes[-1][target] = value
            return _DECLARED
        return value

    def _pipe(self, tokens, position, dot, root, scopes):
        value, position = self._command(tokens, position, dot, root, scopes, None)
        while position < len(tokens) and tokens[position] == ("punct", "|"):
            value, position = self._command(tokens, position + 1, dot, root, scopes, [value])
        return value, position

    def _command(self, tokens, position, dot, root, scopes, piped):
        kind, text = tokens[position]
        if kind == "word" and text in FUNCTIONS:
            arguments = []
            position += 1
            while position < len(tokens) and tokens[position] not in (
                ("punct", "|"),
                ("punct", ")"),
            ):
                argument, position = self._operand(tokens, position, dot, root, scopes)
                arguments.append(argument)
            if piped is not None:
                arguments.extend(piped)
            if text == "include":
                return self.include(*arguments), position
            return FUNCTIONS[text](*arguments), position
        if piped is not None:
            raise TemplateError(f"cannot pipe into {text!r}")
        return self._operand(tokens, position, dot, root, scopes)

    def _operand(self, tokens, position, dot, root, scopes):
        kind, text = tokens[position]
        if kind == "string":
            return text[1:-1].encode().decode("unicode_escape"), position + 1
        if kind == "number":
            return (float(text) if "." in text else int(text)), position + 1
        if kind == "field":
            return _walk(dot, text[1:].split(".") if text != "." else [], text), position + 1
        if kind == "variable":
            name, *path = text.split(".")
            if name == "$":
                base = root
            else:
                for scope in reversed(scopes):
                    if name in scope:
                        base = scope[name]
                        break
                else:
                    raise TemplateError(f"undefined variable {name}")
            return _walk(base, path, text), position + 1
        if kind == "word" and text in ("true", "false"):
            return text == "true", position + 1
        if (kind, text) == ("punct", "("):
            value, position = self._pipe(tokens, position + 1, dot, root, scopes)
            if tokens[position] != ("punct", ")"):
                raise TemplateError("unbalanced parentheses")
            return value, position + 1
        if kind == "word":
            return self._command(tokens, position, dot, root, scopes, None)
        raise TemplateError(f"unexpected {text!r}")


_DECLARED = object()


def _walk(value: Any, path: list[str], text: str) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise TemplateError(f"{text}: no key {part!r} (check values.yaml)")
        value = value[part]
    return value


def _truthy(value: Any) -> bool:
    return bool(value)  # Go's rule: false, 0, nil and empty strings and collections


def _print(value: Any) -> str:
    if value is None:
        raise TemplateError("a template printed a missing value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(width: int, text: str) -> str:
    pad = " " * width
    return pad + text.replace("\n", "\n" + pad)


def _required(message: str, value: Any) -> Any:
    if value in (None, ""):
        raise TemplateError(f"required: {message}")
    return value


FUNCTIONS = {
    "include": None,  # handled by the renderer: it needs the defined templates
    "toYaml": _to_yaml,
    "indent": _indent,
    "nindent": lambda width, text: "\n" + _indent(width, text),
    "quote": lambda value: '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"',
    "trim": lambda text: text.strip(),
    "trunc": lambda length, text: text[:length],
    "trimSuffix": lambda suffix, text: text[: -len(suffix)] if text.endswith(suffix) else text,
    "until": lambda count: list(range(count)),
    "int": int,
    "add": lambda a, b: a + b,
    "div": lambda a, b: a // b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "not": lambda value: not _truthy(value),
    "required": _required,
    "b64enc": lambda text: base64.b64encode(text.encode()).decode(),
}


# ---------------------------------------------------------------- the chart


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart: Path = CHART, values: dict | None = None, release: dict | None = None
) -> dict[str, str]:
    """Each template file's rendered text, like ``helm template`` (files starting with _
    only define templates)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    context = {
        "Values": deep_merge(defaults, values or {}),
        "Release": {"Name": "dispa", "Namespace": "default", "Service": "Helm", **(release or {})},
        "Chart": {
            "Name": meta["name"],
            "Version": meta["version"],
            "AppVersion": meta["appVersion"],
        },
    }
    parsed = {}
    defines: dict[str, list] = {}
    for path in sorted((chart / "templates").iterdir()):
        if path.suffix not in (".yaml", ".tpl"):
            continue
        nodes, found = parse(path.read_text())
        defines.update(found)
        parsed[path.name] = nodes
    renderer = Renderer(defines)
    return {
        name: renderer.run(nodes, context, context, [{}])
        for name, nodes in parsed.items()
        if not name.startswith("_")
    }


def chart_documents(values: dict | None = None, release: dict | None = None) -> list[dict]:
    documents = []
    for name, text in render_chart(values=values, release=release).items():
        try:
            documents.extend(doc for doc in yaml.safe_load_all(text) if doc is not None)
        except yaml.YAMLError as error:
            raise TemplateError(f"{name} does not render to valid YAML: {error}\n{text}") from None
    return documents


# dispa.yaml uses the Secret by name, so that applying it again never overwrites the
# secret the cores were started with; secret.yaml is applied once.
PLAIN_VALUES = {"secret": {"existingSecret": "dispa-cluster"}}
_NAMESPACE = """apiVersion: v1
kind: Namespace
metadata:
  name: dispa
"""


def _joined(rendered: dict[str, str]) -> str:
    parts = []
    for name, text in rendered.items():
        body = text.strip("\n")
        if body:
            parts.append(f"# Source: dispa/templates/{name}\n{body}\n")
    return "---\n".join(parts)


def plain_manifests_text() -> str:
    """deploy/kubernetes/dispa.yaml: the namespace, then the chart rendered for it."""
    rendered = render_chart(values=PLAIN_VALUES, release=PLAIN_RELEASE)
    header = (
        "# Dispa on Kubernetes: the chart in deploy/helm/dispa rendered with its default values\n"
        "# for the namespace dispa. Generated by tests/unit/deploy/chart_renderer.py; do not\n"
        "# edit by hand (change the chart and run it again). It uses the Secret dispa-cluster:\n"
        '# create it first, see secret.yaml and docs/operator-guide.md, "Deploy on Kubernetes".\n'
    )
    return header + "---\n" + _NAMESPACE + "---\n" + _joined(rendered)


def plain_secret_text() -> str:
    """deploy/kubernetes/secret.yaml: the cluster secret, with a placeholder value."""
    rendered = render_chart(values={"secret": {"value": PLACEHOLDER_SECRET}}, release=PLAIN_RELEASE)
    header = (
        "# The cluster secret of deploy/kubernetes/dispa.yaml. Replace the placeholder with a\n"
        "# random value and apply it once, before dispa.yaml; or create it with kubectl\n"
        '# (docs/operator-guide.md, "Deploy on Kubernetes"). Every core must keep the same\n'
        "# secret. Generated by tests/unit/deploy/chart_renderer.py.\n"
    )
    return header + "---\n" + _joined({"secret.yaml": rendered["secret.yaml"]})


def plain_daemonset_text() -> str:
    """deploy/kubernetes/edge-daemonset.yaml: the edges as a DaemonSet, one per node."""
    rendered = render_chart(
        values={**PLAIN_VALUES, "edge": {"kind": "DaemonSet"}}, release=PLAIN_RELEASE
    )
    header = (
        "# The edges as a DaemonSet (one edge on every node) instead of the Deployment in\n"
        "# dispa.yaml: delete that Deployment (kubectl -n dispa delete deployment dispa-edge),\n"
        "# then apply this file. Generated by tests/unit/deploy/chart_renderer.py.\n"
    )
    return header + "---\n" + _joined({"edge-workload.yaml": rendered["edge-workload.yaml"]})


if __name__ == "__main__":
    PLAIN_MANIFESTS.parent.mkdir(parents=True, exist_ok=True)
    PLAIN_MANIFESTS.write_text(plain_manifests_text())
    PLAIN_DAEMONSET.write_text(plain_daemonset_text())
    PLAIN_SECRET.write_text(plain_secret_text())
    for path in (PLAIN_MANIFESTS, PLAIN_DAEMONSET, PLAIN_SECRET):
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
