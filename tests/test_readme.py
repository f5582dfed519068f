"""The README's examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(heading: str) -> str:
    section = README.read_text().split(f"## {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.timeout(60)
def test_first_job_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "first.py"
    script.write_text(section_code("A first job"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr
    assert "sending to ann@example.com" in result.stdout
    assert "('send-email', 'welcome', 'succeeded')" in result.stdout


@pytest.mark.timeout(60)
def test_testing_example_passes_under_pytest(tmp_path: Path) -> None:
    script = tmp_path / "test_billing.py"
    script.write_text(section_code("Testing your jobs"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert len(block) == 2
    assert block[0].endswith("asyncjobs demo")
    assert "pytest" in block[1]
