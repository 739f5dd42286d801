"""The FlowLang tutorial's files and commands, read from its text (tests/scenarios/tutorial/).

A file is the code block under the line that names it ("Create `flow.py`:") or a shell
here-document in a block (`cat > .env << 'EOF'`); a command is a line of a `bash` block, found
whole. Nothing is retyped: a test that runs these runs what the tutorial says.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

COMMAND_TIMEOUT = 120  # a cold interpreter, or pytest in the project, on a busy machine
TEXT = Path(__file__).with_name("tutorial") / "flowlang-tutorial.md"
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>\S*)\s*$")
_HEREDOC = re.compile(
    r"^cat > (?P<name>\S+) << '(?P<end>\w+)'\n(?P<body>.*?\n)(?P=end)$", re.M | re.S
)


@dataclass(frozen=True)
class CodeBlock:
    intro: str  # the last line of prose before the block
    language: str
    text: str  # the block's lines, each ending with a newline


@dataclass(frozen=True)
class CurlRequest:
    """A `curl -X METHOD URL -H ... -d BODY` line of the tutorial."""

    method: str
    url: str
    headers: dict[str, str]
    body: str

    @classmethod
    def parse(cls, command: list[str]) -> CurlRequest:
        assert command[0] == "curl", command
        method, url, headers, body = "GET", "", {}, ""
        arguments = iter(command[1:])
        for argument in arguments:
            if argument == "-X":
                method = next(arguments)
            elif argument == "-H":
                name, value = next(arguments).split(":", 1)
                headers[name.strip()] = value.strip()
            elif argument == "-d":
                body = next(arguments)
            else:
                assert not argument.startswith("-"), f"curl option {argument} not understood"
                url = argument
        return cls(method, url, headers, body)


@dataclass(frozen=True)
class Tutorial:
    text: str

    @classmethod
    def read(cls) -> Tutorial:
        return cls(TEXT.read_text(encoding="utf-8"))

    @cached_property
    def blocks(self) -> list[CodeBlock]:
        blocks: list[CodeBlock] = []
        intro, opened, language, lines = "", None, "", list[str]()
        for line in self.text.splitlines():
            fence = _FENCE.match(line)
            if opened is None and fence:
                opened, language, lines = fence["indent"], fence["language"], []
            elif opened is not None and fence and fence["indent"] == opened:
                blocks.append(CodeBlock(intro, language, "".join(f"{x}\n" for x in lines)))
                opened = None
            elif opened is not None:
                lines.append(line.removeprefix(opened))
            elif line.strip():
                intro = line.strip()
        return blocks

    def created_file(self, name: str) -> str:
        """The block introduced by "Create `name`:" (or "Create a file `name`:")."""
        found = [
            block.text
            for block in self.blocks
            if block.intro.startswith("Create") and f"`{name}`" in block.intro
        ]
        assert len(found) == 1, f"the tutorial creates {name} in {len(found)} blocks"
        return found[0]

    def heredoc_file(self, name: str) -> str:
        """What `cat > name << 'EOF' ... EOF` in a bash block writes."""
        found = [
            match["body"]
            for block in self.blocks
            if block.language == "bash"
            for match in _HEREDOC.finditer(block.text)
            if match["name"] == name
        ]
        assert len(found) == 1, f"the tutorial writes {name} with {len(found)} here-documents"
        return found[0]

    def block_after(self, intro: str) -> str:
        found = [block.text for block in self.blocks if block.intro == intro]
        assert len(found) == 1, f"{len(found)} blocks follow {intro!r}"
        return found[0]

    def command(self, line: str) -> list[str]:
        """`line`, which must be a whole line of one of the tutorial's bash blocks, as argv."""
        lines = {
            text.strip()
            for block in self.blocks
            if block.language == "bash"
            for text in block.text.splitlines()
        }
        assert line in lines, f"the tutorial has no command {line!r}"
        return shlex.split(line)

    def curl_requests(self, intro: str) -> list[CurlRequest]:
        """The curl commands of the bash block after `intro` (lines joined where they end
        with a backslash; comments left out)."""
        text = self.block_after(intro).replace("\\\n", " ")
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        return [CurlRequest.parse(shlex.split(line)) for line in lines]

    def setup_sql(self) -> list[str]:
        """The statements Step 3's setup_db.py executes, in order (its connection parameters
        are fixed in the file, so tests run its SQL on a database of their own)."""
        module = ast.parse(self.created_file("setup_db.py"))
        return [
            node.args[0].value
            for node in ast.walk(module)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "execute"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ]


def argv(command: list[str]) -> list[str]:
    """A tutorial command for this interpreter: `python` is the interpreter running the tests,
    `flowlang` the console script that README command 1 installed beside it; `./script` runs
    as it is, from the directory it is run in."""
    program, *arguments = command
    if program.startswith("./"):
        return command
    if program == "python":
        return [sys.executable, *arguments]
    if program == "flowlang":
        script = Path(sys.executable).parent / "flowlang"
        assert script.is_file(), f"{script} is missing: README command 1 installs it"
        return [str(script), *arguments]
    raise AssertionError(f"no way to run the tutorial's {program!r} here")


def run(
    command: Sequence[str], directory: Path, environment: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`command` as a user runs it in `directory`, with `environment` over ours."""
    return subprocess.run(
        command,
        cwd=directory,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
