"""bench/RESULTS.md keeps every benchmark's section when one of them writes its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import ROOT


def test_writing_one_section_keeps_the_others_whatever_their_names(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "results.py")
    assert spec is not None and spec.loader is not None
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    monkeypatch.setattr(results, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "ROOT", tmp_path)
    for name in ("stream (latency)", "slow clients", "batch", "stream (latency)"):
        results.write_section(name, f"python bench/{name}.py", f"figures of {name}")
    text = (tmp_path / "RESULTS.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## batch",
        "## slow clients",
        "## stream (latency)",
    ]
    assert text.count("figures of stream (latency)") == 1 and "figures of slow clients" in text
