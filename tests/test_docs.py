"""The documentation's command examples: every one names flags that exist (fast), and the cheap ones run
(slow set, with small budgets), so a page cannot drift from the code unnoticed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]


def examples() -> list[tuple[str, int, str]]:
    """``(page, line, command)`` for every `mnas ...` line in a shell code block of the docs."""
    out = []
    for page in PAGES:
        fenced, lang = False, ""
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines, 1):
            if line.startswith("```"):
                fenced, lang = not fenced, line[3:].strip()
                continue
            text = line.strip().removeprefix("$ ")
            if not (fenced and lang in ("bash", "sh", "console", "") and re.match(r"^(\.venv/bin/)?mnas [a-z]", text)):
                continue
            argv = shlex.split(text, comments=True)[1:]
            if not argv or any(a.endswith(":") for a in argv[:3]):  # `mnas search: error: ...` is output
                continue
            following = lines[i] if i < len(lines) else ""
            if ": error:" in following:  # a bad-input demonstration: its error is the point
                continue
            out.append((page.name, i, text))
    return out


EXAMPLES = examples()


def _argv(text: str) -> list[str]:
    return [a for a in shlex.split(text, comments=True)[1:] if a != "..."]  # "..." elides the rest


def test_the_docs_have_examples():
    assert len(EXAMPLES) > 30


@pytest.mark.parametrize("page, line, text", EXAMPLES, ids=[f"{p}:{n}" for p, n, _ in EXAMPLES])
def test_every_example_names_flags_that_exist(page, line, text):
    from mnas.cli import UsageExit, make_parser

    try:
        make_parser().parse_args(_argv(text))
    except UsageExit:
        pytest.fail(f"{page}:{line}: `{text}` does not parse (see the error above)")


# cheap enough to run: (command prefix, budget flags rewritten to small values)
CHEAP = ("arch ", "eval ", "latency list", "latency predict", "latency explain", "export ", "search ", "plot ")
SLOW_ONES = ("--backend ray", "--trials 8000", "--resume", "--config", "--batch", "calibrate", "validate")


def _runnable(text: str) -> bool:
    argv = " ".join(_argv(text))
    return (argv.startswith(CHEAP) and not any(s in argv for s in SLOW_ONES)
            and not re.search(r"<|\bRUN\b|\bCODE\b|HOST|my_net|net\.yaml|/bin/ls|\.\.\.", argv))


@pytest.mark.slow
@pytest.mark.parametrize("page, line, text", [e for e in EXAMPLES if _runnable(e[2])],
                         ids=[f"{p}:{n}" for p, n, t in EXAMPLES if _runnable(t)])
def test_cheap_examples_run(page, line, text, tmp_path, shared_data):
    argv = _argv(text)
    argv = [re.sub(r"^\.\./shared/data", str(shared_data), a) for a in argv]
    if argv[0] == "search":  # a small budget, a fresh folder
        argv = [a for a in argv]
        if "--trials" in argv:
            argv[argv.index("--trials") + 1] = "30"
        else:
            argv += ["--trials", "30"]
        argv += ["--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "mnas", *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg",
                                            "HOME": str(tmp_path)})
    assert proc.returncode == 0, f"{page}:{line}: `{text}` failed: {proc.stderr.strip()[-500:]}"
