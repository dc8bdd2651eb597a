"""docs/operator-guide.md stays in step with the code and with deploy/.

Every ``dispa`` command line quoted in the guide's code must be accepted by the real
command-line parser, and the config files the guide shows must be the example files
shipped in deploy/examples/multi-region (compared as parsed YAML).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from dispa.cli import DELEGATED, build_parser

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "operator-guide.md"
MULTI_REGION = REPO / "deploy" / "examples" / "multi-region"
# "dispa" where a shell would run it: at the start, after a prompt, a path, sudo, or
# "kubectl exec POD --" / "compose exec SERVICE".
_COMMAND = re.compile(r"(?:^|\$ |sudo |/bin/|-- |exec \S+ )dispa ((?:[^#|&>;`])*)")


def _code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def _command_lines() -> list[str]:
    """Whole command lines, from the guide's shell blocks (after ``dispa``)."""
    lines = []
    for language, body in _code_blocks(GUIDE.read_text()):
        if language in ("sh", "console", "text", ""):
            lines.extend(line.strip() for line in body.splitlines())
    return [match.group(1).strip() for line in lines for match in _COMMAND.finditer(line)]


def _inline_commands() -> list[str]:
    """Commands named in the prose, like `dispa drill run`: the words after ``dispa``."""
    spans = re.findall(r"`([^`\n]*dispa [^`\n]*)`", GUIDE.read_text())
    return [match.group(1).strip() for span in spans for match in _COMMAND.finditer(span)]


def _parser_for(arguments: list[str]):
    """The parser that reads ``arguments``: dispa's, or that of a command dispa hands its
    arguments to (``dispa drill`` is read by chaos.cli), with the words it consumed cut."""
    import importlib

    for words, (module, _function) in DELEGATED.items():
        if tuple(arguments[: len(words)]) == words:
            delegate = importlib.import_module(module)
            assert hasattr(delegate, "build_parser"), f"{module} has no build_parser"
            return delegate.build_parser(), arguments[len(words) :]
    return build_parser(), arguments


def _subcommands(parser) -> dict:
    for action in parser._actions:  # argparse keeps subcommands only here
        if action.__class__.__name__ == "_SubParsersAction":
            return action.choices
    return {}


def test_the_guide_quotes_the_cluster_commands() -> None:
    words = {command.split()[0] for command in _command_lines() + _inline_commands()}
    assert {"core", "edge", "apply", "status", "backup", "restore", "drill"} <= words


@pytest.mark.parametrize("command", sorted(set(_command_lines())))
def test_every_quoted_command_line_is_accepted_by_dispa(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "$(" in command or "..." in command:
        pytest.skip("a placeholder the shell or the reader fills in")
    # The guide sets DISPA_ADMIN once and leaves --admin out from then on.
    monkeypatch.setenv("DISPA_ADMIN", "10.1.0.10:9911")
    arguments = shlex.split(command)
    # Words in capitals are placeholders for the reader (FILE, NAME): any value will do.
    arguments = [word.lower() if word.isupper() else word for word in arguments]
    parser, arguments = _parser_for(arguments)
    try:
        parsed = parser.parse_args(arguments)
    except SystemExit as exit_:
        if exit_.code:
            raise AssertionError(f"`dispa {command}` is refused by dispa's parser") from None
        return  # --help
    if parser.prog == "dispa drill" and parsed.command == "run":
        from chaos.cli import parse_duration
        from chaos.drills import find

        assert parsed.name == "all" or find(parsed.name), f"no drill named {parsed.name!r}"
        parse_duration(parsed.duration)  # checked after parsing, when the drill runs


@pytest.mark.parametrize("command", sorted(set(_inline_commands())))
def test_every_command_named_in_the_prose_exists(command: str) -> None:
    words = command.split()
    parser, rest = _parser_for(words)
    for word in rest:
        choices = _subcommands(parser)
        if not choices or word.startswith("-") or word.isupper():
            break
        assert word in choices, f"`dispa {command}`: dispa has no command {word!r}"
        parser = choices[word]


def _guide_yaml_block(first_line: str) -> dict:
    for language, body in _code_blocks(GUIDE.read_text()):
        if language == "yaml" and body.startswith(first_line):
            return yaml.safe_load(body)
    raise AssertionError(f"no yaml block starting with {first_line!r} in the guide")


@pytest.mark.parametrize(
    ("first_line", "example"),
    [
        ("# /etc/dispa/core.yaml on core-eu (10.1.0.10)", "core-eu.yaml"),
        ("# /etc/dispa/core.yaml on core-us (10.2.0.10)", "core-us.yaml"),
        ("# /etc/dispa/core.yaml on core-ap (10.3.0.10)", "core-ap.yaml"),
        ("# /etc/dispa/edge.yaml on the Frankfurt point of presence", "edge-fra.yaml"),
    ],
)
def test_the_guides_files_are_the_shipped_examples(first_line: str, example: str) -> None:
    shipped = yaml.safe_load((MULTI_REGION / example).read_text())
    assert _guide_yaml_block(first_line) == shipped


def test_the_guide_links_to_files_that_exist() -> None:
    text = GUIDE.read_text()
    links = re.findall(r"\]\((\.\./[^)#]+)", text)
    assert links
    for link in links:
        assert (GUIDE.parent / link).resolve().exists(), link
