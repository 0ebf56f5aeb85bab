"""docs/results.md and the README: every table printed under a command that reads only committed JSON
is what that command prints now, line for line."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from dmt_wrap_benchmarks import paired, tables
from dmt_wrap_benchmarks.diagnostics import agreement

ROOT = Path(__file__).resolve().parents[1]
#: How each regenerating command is run in-process: its leading words -> its ``main``.
SCRIPTS = {("python", "benchmarks/paired.py"): paired.main, ("python", "-m", "benchmarks.tables"): tables.main,
           ("python", "-m", "benchmarks.diagnostics.agreement"): agreement.main}


def regenerated_tables(document: Path) -> list[tuple[str, list[str]]]:
    """``(command, table lines)`` for each fenced bash block whose last command reads only committed
    JSON (it names ``docs/results/`` and writes no ``--json``) and is followed by a table."""
    found, lines = [], document.read_text().splitlines()
    for start, line in enumerate(lines):
        if line != "```bash":
            continue
        end = lines.index("```", start + 1)
        command = lines[end - 1].split("#")[0].strip()
        after = lines[end + 1:]
        while after and not after[0].strip():
            after = after[1:]
        rows = after[:next((i for i, row in enumerate(after) if not row.startswith("|")), len(after))]
        if rows and "docs/results/" in command and "--json" not in command.split():
            found.append((command, rows))
    return found


def run(command: str) -> str:
    words = shlex.split(command)
    for prefix, main in SCRIPTS.items():
        if tuple(words[:len(prefix)]) == prefix:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                assert main(words[len(prefix):]) == 0
            return printed.getvalue()
    raise AssertionError(f"{command!r}: not a command this test knows how to run ({list(SCRIPTS)})")


DOCUMENTS = [ROOT / "docs" / "results.md", ROOT / "README.md"]
CASES = [(doc.name, command, rows) for doc in DOCUMENTS for command, rows in regenerated_tables(doc)]


def test_the_results_of_record_have_their_regenerating_commands():
    names = {(name, re.sub(r"\s+", " ", command)) for name, command, _ in CASES}
    assert ("README.md", "python benchmarks/paired.py docs/results/dmt-vs-controls-seeds0-5.json") in names
    assert sum(name == "results.md" for name, _ in names) >= 8


@pytest.mark.parametrize(("document", "command", "rows"), CASES, ids=[f"{d}: {c}" for d, c, _ in CASES])
def test_each_table_is_what_its_command_prints_from_the_committed_json(document, command, rows, monkeypatch):
    monkeypatch.chdir(ROOT)
    printed = run(command).splitlines()
    missing = [row for row in rows if row not in printed]
    assert not missing, f"{document}: `{command}` no longer prints {missing[:3]}"
