"""The benchmarks' results file, bench/RESULTS.md: one section per benchmark, each with the
machine, the date and the commit it measured, replaced whenever that benchmark runs again.

A benchmark runs its `main` through `run_and_record("name", main)`: what it prints still goes
to the terminal, and lands in its section when it succeeds. Figures live here, never in the code.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = """# Benchmark results

Written by the benchmarks themselves (`make bench`, or one of `python bench/<name>.py`): each
section is replaced when its benchmark runs again, and says on which machine, when and at which
commit it was measured. Timings differ between machines (and between days on shared ones) by 2x
or more: compare rows of one run.
"""


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def run_and_record(name: str, main: Callable[[], int]) -> int:
    """Run a benchmark's `main`, printing as usual; when it succeeds, write what it printed as
    the section `name` of RESULTS.md."""
    captured = io.StringIO()
    terminal = sys.stdout
    sys.stdout = _Tee(terminal, captured)  # type: ignore[assignment]
    try:
        code = main()
    finally:
        sys.stdout = terminal
    if code == 0:
        write_section(name, " ".join(["python", *sys.argv]), captured.getvalue())
    return code


def write_section(name: str, command: str, report: str) -> None:
    sections = _sections(RESULTS.read_text() if RESULTS.exists() else "")
    sections[name] = "\n".join(
        [
            f"## {name}",
            "",
            f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}, {machine()}",
            "",
            "```",
            report.strip("\n"),
            "```",
            "",
        ]
    )
    RESULTS.write_text(HEADER + "\n" + "\n".join(sections[key] for key in sorted(sections)))
    print(f"(written to {RESULTS.relative_to(ROOT)}, section {name})")


def machine() -> str:
    """The CPU model, its count, the memory and the Python version."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1024**2:.0f} GiB"
    return f"{model}, {os.cpu_count()} CPUs{memory}, Python {platform.python_version()}"


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "config", "params.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (with uncommitted changes)" if dirty else "")


def _sections(text: str) -> dict[str, str]:
    found = {}
    # A section's name runs to the end of its heading line: "stream (latency)", "slow clients".
    for match in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        found[match.group(1)] = f"## {match.group(1)}\n{match.group(2).rstrip()}\n"
    return found
