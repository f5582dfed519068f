"""The documentation's examples run as written: every Python block of README.md and docs/.

A block runs as a script in an empty directory. An HTML comment on the line before its fence
changes that: ``<!-- pytest -->`` runs it as a test file under pytest, ``<!-- no-run: why -->``
leaves an excerpt of the example apps (which their own tests run) alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import asyncjobs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- (?P<mark>[^\n]*?) -->\n)?```python\n(?P<code>.*?)^```", re.S | re.M)
MAX_UNRUN = 6


def python_blocks() -> list[tuple[str, str | None, str]]:
    """``(where, mark, code)`` for every Python block, ``where`` being ``file:line``."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match["mark"], match["code"]))
    return found


RUN = [pytest.param(mark, code, id=where) for where, mark, code in python_blocks()]
RUN = [param for param in RUN if not (param.values[0] or "").startswith("no-run")]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=50)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mark", "code"), RUN)
def test_python_block_runs(mark: str | None, code: str, tmp_path: Path) -> None:
    if mark == "pytest":
        script = tmp_path / "test_example.py"
        script.write_text(code)
        result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^\d+ passed", result.stdout, re.M), result.stdout
        return
    assert mark is None, f"unknown mark <!-- {mark} -->"
    script = tmp_path / "example.py"
    script.write_text(code)
    result = _run([sys.executable, str(script)], tmp_path)
    assert result.returncode == 0, result.stderr


def test_every_block_runs_but_a_few_excerpts() -> None:
    blocks = python_blocks()
    unrun = [where for where, mark, _ in blocks if (mark or "").startswith("no-run")]
    assert len(blocks) > 10
    assert len(unrun) <= MAX_UNRUN, unrun


REFERENCE = ROOT / "docs" / "reference.md"
CONTRACT_NAMES = [
    # Jobs' methods and arguments, and the adapters, beyond the package's __all__.
    "queue_many",
    "run_by_id",
    "cancel_by_id",
    "retry_by_id",
    "handle_schedules",
    "find",
    "get",
    "lifespan",
    "stop_timeout",
    "asgi_app",
    "clock",
    "on_success",
    "on_fail",
    "output_schema",
    "input_schema",
    "should_restore",
    "completes_job",
    "run_until_idle",
    "init_app",
    "mount",
    "get_jobs",
    "asyncjobs.runner",
    "asyncjobs.autorun",
    "asyncjobs.storage",
    "asyncjobs.http",
    "asyncjobs.schedules",
]


@pytest.mark.parametrize("name", [*asyncjobs.__all__, *CONTRACT_NAMES])
def test_the_reference_covers_every_public_name(name: str) -> None:
    text = REFERENCE.read_text()
    assert re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", text), name


def section_code(heading: str) -> str:
    section = README.read_text().split(f"## {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.timeout(60)
def test_first_job_example_prints_what_it_says(tmp_path: Path) -> None:
    script = tmp_path / "first.py"
    script.write_text(section_code("A first job"))
    result = _run([sys.executable, str(script)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sending to ann@example.com" in result.stdout
    assert "('send-email', 'welcome', 'succeeded')" in result.stdout


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert len(block) == 2
    assert block[0].endswith("asyncjobs demo")
    assert "pytest" in block[1]
