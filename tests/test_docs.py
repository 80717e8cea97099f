"""Every example in README.md and docs/*.md runs, and the README's figures match the
generated reports they are taken from.

Fenced blocks, one test case each, in document order:

- ``python``: the blocks of one file run in order in one namespace (``__name__`` is
  ``"__main__"``), in a temporary working directory of that file;
- ``bash`` / ``console``: run with ``bash -e`` in the same directory when every command
  starts with ``sifternet `` or ``python `` (``console`` blocks: the lines after ``$ ``);
- ``text``: not code, never run.

Markers, an HTML comment on the line right before a fence:

- ``<!-- not run: REASON -->``: the case is reported as skipped with the reason;
- ``<!-- requires: MODULE ... -->``: skipped when one of the modules cannot be imported.

A shell block that is neither runnable nor marked fails, and so does a fence in any
other language, so no example is left out without a visible reason.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "console", "text")
RUNNABLE_COMMANDS = ("sifternet ", "python ")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(not run|requires)\s*:\s*(.*?)\s*-->\s*$")
SHELL_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None = None
    requires: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown file, and problems with fences and markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    where = path.relative_to(ROOT)
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        marker = MARKER.match(lines[k].strip())
        if marker and not (k + 1 < len(lines) and FENCE.match(lines[k + 1])):
            problems.append(f"{where}:{k + 1}: a marker must be on the line right before a fence")
        if not opening:
            k += 1
            continue
        fence, language = opening.groups()
        end = k + 1
        while end < len(lines) and not (
            lines[end].startswith(fence[0] * len(fence)) and not lines[end].strip(fence[0]).strip()
        ):
            end += 1
        if end == len(lines):
            problems.append(f"{where}:{k + 1}: unclosed fence")
        if language not in LANGUAGES:
            problems.append(f"{where}:{k + 1}: fence language {language!r} is not one of {LANGUAGES}")
        not_run, requires = None, ()
        previous = MARKER.match(lines[k - 1].strip()) if k else None
        if previous:
            kind, value = previous.groups()
            if not value:
                problems.append(f"{where}:{k}: the marker needs a reason or module names")
            if kind == "not run":
                not_run = value
            else:
                requires = tuple(value.split())
        blocks.append(Block(path, k + 1, language, "\n".join(lines[k + 1 : end]) + "\n", not_run, requires))
        k = end + 1
    return blocks, problems


PARSED = {path: parse(path) for path in DOCUMENTS}
BLOCKS = [block for blocks, _ in PARSED.values() for block in blocks if block.language != "text"]


def shell_commands(block: Block) -> list[str]:
    """The commands of a bash / console block, continuation lines joined."""
    commands: list[str] = []
    pending = ""
    for raw in block.code.splitlines():
        line = raw.strip()
        if block.language == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending)
    return commands


# -- one namespace and working directory per document ---------------------------------
@dataclass
class DocumentRun:
    workdir: Path
    namespace: dict = field(default_factory=lambda: {"__name__": "__main__"})
    done: set = field(default_factory=set)
    failed: str | None = None


_RUNS: dict[Path, DocumentRun] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    yield _RUNS
    _RUNS.clear()


def _document_run(path: Path, runs: dict, tmp_path_factory) -> DocumentRun:
    if path not in runs:
        runs[path] = DocumentRun(tmp_path_factory.mktemp(path.stem))
    return runs[path]


def _missing(requires: tuple[str, ...]) -> str | None:
    for module in requires:
        try:
            importlib.import_module(module)
        except ImportError as error:
            return f"requires {module}: {error}"
    return None


def _exec(block: Block, run: DocumentRun, monkeypatch) -> None:
    monkeypatch.chdir(run.workdir)
    code = compile(block.code, block.name, "exec")
    try:
        exec(code, run.namespace)  # noqa: S102 - running the documentation's own examples is the point
    except BaseException:
        run.failed = block.name
        raise
    finally:
        run.done.add(block.line)


def _run_shell(block: Block, run: DocumentRun) -> None:
    commands = shell_commands(block)
    bad = [c for c in commands if not c.startswith(RUNNABLE_COMMANDS)]
    if bad:
        pytest.fail(
            f"{block.name}: {bad[0]!r} is not a command test_docs runs (only {RUNNABLE_COMMANDS}); "
            "mark the block with '<!-- not run: reason -->' on the line before it"
        )
    env = dict(
        os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    script = "set -e\n" + "\n".join(commands) + "\n"
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=run.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )
    run.done.add(block.line)
    assert result.returncode == 0, (
        f"{block.name}: exit status {result.returncode}\n$ {script}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.name}-{b.language}")
def test_example(block: Block, runs, tmp_path_factory, monkeypatch):
    if block.not_run is not None:
        pytest.skip(f"{block.name}: not run: {block.not_run}")
    missing = _missing(block.requires)
    if missing:
        pytest.skip(f"{block.name}: {missing}")
    run = _document_run(block.path, runs, tmp_path_factory)
    if block.language in ("bash", "console"):
        _run_shell(block, run)
        return
    # Earlier Python blocks of the same document first (normally already run, in order).
    for earlier in PARSED[block.path][0]:
        if earlier.line >= block.line:
            break
        if (
            earlier.language == "python"
            and earlier.line not in run.done
            and earlier.not_run is None
            and _missing(earlier.requires) is None
        ):
            _exec(earlier, run, monkeypatch)
    if run.failed is not None:
        pytest.fail(f"{block.name} continues {run.failed}, which failed")
    _exec(block, run, monkeypatch)


def test_fences_and_markers():
    problems = [problem for _, found in PARSED.values() for problem in found]
    assert not problems, "\n".join(problems)
    assert any(block.not_run is None for block in BLOCKS), "no example would run"


# -- figures copied from generated reports --------------------------------------------
def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 1 and not set(cells[1]) <= set("-: "):
            rows.setdefault(cells[0], cells[1:])
    return rows


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following >= 0 else len(text)]


def test_readme_results_come_from_the_evaluation_report():
    readme = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Results")
    summary = (ROOT / "docs" / "evaluation" / "summary.md").read_text(encoding="utf-8")
    defenses = _section(summary, "## Defenses")
    header = next(line for line in defenses.splitlines() if line.startswith("| data set"))
    columns = [cell.strip() for cell in header.strip().strip("|").split("|")][1:]
    report = _table_rows(defenses)
    # The default repair's column: its run of the unknown-trigger grid (the same models).
    grid = (ROOT / "docs" / "evaluation" / "grid-nearest" / "summary.md").read_text(encoding="utf-8")
    grid_section = _section(grid, "## Acc / ASR per trigger and defense")
    grid_header = next(line for line in grid_section.splitlines() if line.startswith("| data set"))
    grid_columns = [cell.strip() for cell in grid_header.strip().strip("|").split("|")][1:]
    default = _table_rows(grid_section)
    readme_rows = {k: v for k, v in _table_rows(readme).items() if k != "data set, attack"}
    assert readme_rows, "README: no results table under '## Results'"
    for row, (none, paper, highlights, repair) in readme_rows.items():
        assert row in report, f"README results row {row!r} is not in docs/evaluation/summary.md"
        expected = [report[row][columns.index(name)] for name in ("none", "sifternet", "sifternet-repair")]
        assert [none, paper, highlights] == expected, f"README results row {row!r}"
        same_cell = {name: default[row][grid_columns.index(name)] for name in ("none", "sifternet-nearest")}
        assert same_cell["none"] == none, f"README results row {row!r}: the grid's model differs"
        assert repair == same_cell["sifternet-nearest"], f"README results row {row!r}: default repair"


def test_readme_unknown_trigger_counts_come_from_the_grid_report():
    readme = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Triggers it was not told about")
    grid = (ROOT / "docs" / "evaluation" / "grid" / "summary.md").read_text(encoding="utf-8")
    counts = _table_rows(_section(grid, "## Count per defense"))
    # The nearest-seed repair's own run of the same grid (only `none` and itself).
    nearest = (ROOT / "docs" / "evaluation" / "grid-nearest" / "summary.md").read_text(encoding="utf-8")
    counts.update(_table_rows(_section(nearest, "## Count per defense")))
    # The query mode's own run of the same grid, on the same models.
    query = (ROOT / "docs" / "evaluation" / "grid-query" / "summary.md").read_text(encoding="utf-8")
    counts["sifternet-query"] = _table_rows(_section(query, "## Count per defense"))["sifternet-query"]
    readme_rows = {k: v for k, v in _table_rows(readme).items() if k != "defense"}
    assert readme_rows, "README: no count table under '## Triggers it was not told about'"
    header = next(line for line in readme.splitlines() if line.startswith("| defense"))
    grid_header = next(line for line in grid.splitlines() if line.startswith("| defense"))
    assert header == grid_header, "README count table: not the grid report's columns"
    for row, cells in readme_rows.items():
        assert counts.get(row) == cells, (
            f"README count row {row!r} differs from docs/evaluation/grid/summary.md"
        )


def test_readme_performance_line_comes_from_the_benchmark_report():
    readme = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Performance")
    report = (ROOT / "benchmarks" / "REPORT.md").read_text(encoding="utf-8")
    figures = re.findall(r"([\d,]+) (?:recalls|images)/s|(\d+(?:\.\d+)?)x\b", readme)
    assert figures, "README: no figure under '## Performance'"
    for rate, ratio in figures:
        figure = rate or f"{ratio}x"
        assert figure in report, f"README performance figure {figure} is not in benchmarks/REPORT.md"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.endswith("&& pytest"))
    installed = {
        arg
        for part in command.split("&&")
        if part.split()[:2] == ["pip", "install"]
        for arg in shlex.split(part)[2:]
    }
    ci_installed = {
        arg
        for line in ci.splitlines()
        if line.split()[:2] == ["pip", "install"]
        for arg in shlex.split(line)[2:]
    }
    assert installed and installed <= ci_installed, (
        f"README installs {sorted(installed - ci_installed)}, CI does not"
    )
    assert re.search(r"^pytest$", ci, re.MULTILINE), ".ci/run no longer runs plain `pytest`"


# -- links and section pointers ------------------------------------------------------
def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    text = re.sub(
        r"^(`{3,}|~{3,}).*?^\1\s*$", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL
    )
    return [match.group(1).strip() for match in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)]


def test_links_between_documents_resolve():
    problems = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            linked = (path.parent / target).resolve() if target else path
            if not linked.exists():
                problems.append(f"{path.relative_to(ROOT)}: link to missing {target}")
            elif anchor and anchor not in {_slug(h) for h in _headings(linked)}:
                problems.append(
                    f"{path.relative_to(ROOT)}: no heading for #{anchor} in {target or path.name}"
                )
    assert not problems, "\n".join(problems)


def test_code_points_at_existing_sections():
    pointer = re.compile(r"docs/(\w+)\.md(?:, ([A-Z][\w -]*\w)|#([\w-]+))?")
    problems = []
    sources = [
        ROOT / "setup.py",
        *(
            p
            for d in ("sifternet", "csrc", "tests", "benchmarks", "scripts", "fuzz")
            for p in sorted((ROOT / d).rglob("*"))
            if p.suffix in (".py", ".hpp", ".cpp", ".md", ".sh")
        ),
    ]
    for source in sources:
        for name, heading, anchor in pointer.findall(source.read_text(encoding="utf-8", errors="replace")):
            document = ROOT / "docs" / f"{name}.md"
            if not document.exists():
                problems.append(f"{source.relative_to(ROOT)}: docs/{name}.md does not exist")
                continue
            headings = _headings(document)
            if heading and heading not in headings:
                problems.append(f"{source.relative_to(ROOT)}: docs/{name}.md has no section {heading!r}")
            if anchor and anchor not in {_slug(h) for h in headings}:
                problems.append(f"{source.relative_to(ROOT)}: docs/{name}.md has no anchor #{anchor}")
    assert not problems, "\n".join(problems)
