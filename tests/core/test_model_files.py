"""Model files: pickled fast, atomically, byte for byte the same; older joblib files still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from songrec.core.io import load_model, save_model
from songrec.core.numerics import pin_openblas_kernel


def a_model() -> dict[str, object]:
    return {
        "weights": np.linspace(0.0, 1.0, 50),
        "catalog": pd.DataFrame({"track_id": ["a", "b", "c"], "popularity": [3, 1, 2]}),
        "names": ("genre", "popularity"),
    }


def test_a_saved_model_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    save_model(a_model(), path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded["weights"], a_model()["weights"])
    pd.testing.assert_frame_equal(loaded["catalog"], a_model()["catalog"])
    assert loaded["names"] == ("genre", "popularity")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pkl"]  # no temporary file left behind


def test_saving_twice_in_two_processes_writes_the_same_bytes(tmp_path: Path) -> None:
    """dvc.lock records the model's md5: the bytes must not depend on the process (hash seed)."""
    script = (
        "import sys; from pathlib import Path; from tests.core.test_model_files import a_model;"
        "from songrec.core.io import save_model; save_model(a_model(), Path(sys.argv[1]))"
    )
    for name, seed in (("one.pkl", "1"), ("two.pkl", "2")):
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / name)],
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=Path(__file__).parents[2],
        )
    assert (tmp_path / "one.pkl").read_bytes() == (tmp_path / "two.pkl").read_bytes()


def test_a_joblib_file_of_an_older_version_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "bundle.joblib"
    joblib.dump(a_model(), path)
    np.testing.assert_array_equal(load_model(path)["weights"], a_model()["weights"])


def test_the_openblas_kernel_is_pinned_unless_the_user_chose_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    assert pin_openblas_kernel() == "Zen"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    kernel = pin_openblas_kernel()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = "Haswell" if (" avx2" in flags and " fma" in flags) else None
    assert kernel == expected
