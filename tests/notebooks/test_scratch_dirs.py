"""The notebooks' scratch folders are removed when the kernel stops (``lab.scratch_dir``).

Each notebook wrote its synthetic log to ``tempfile.mkdtemp()`` and never removed it: every run
in JupyterLab left 2–3 MB in /tmp (``llmgw-quickstart-…``, ``llmgw-policy-lab-…``, …). Here a
real kernel (nbclient, as JupyterLab's) runs the quickstart with the temporary folder pointed at
the test's own, and nothing is left once the kernel has stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def _code(nb: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_no_notebook_makes_a_folder_it_leaves_behind(nb: Path) -> None:
    assert "mkdtemp(" not in _code(nb), f"{nb.name}: use lab.scratch_dir(name), removed when the kernel stops"


def test_a_scratch_folder_goes_when_asked_again_and_when_the_process_ends(tmp_path: Path) -> None:
    script = (
        "from llmgw_kernel import lab\n"
        "first = lab.scratch_dir('t'); (first / 'log').mkdir(); (first / 'log' / 'x').write_text('1')\n"
        "second = lab.scratch_dir('t')\n"
        "assert not first.exists() and second.exists() and not any(second.iterdir())\n"
        "(second / 'y').write_text('2')\n"
        "print(second)\n"
    )
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_the_quickstart_leaves_nothing_in_the_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the kernel's tempfile.gettempdir()
    monkeypatch.setenv("LLMGW_CANDIDATES_DIR", str(tmp_path / "candidates"))
    nb = nbformat.read(NOTEBOOKS[0].parent / "replay_quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[1].outputs == [] or all(o.get("output_type") != "error" for o in nb.cells[1].outputs)
    left = [p.name for p in scratch.iterdir() if p.name.startswith("llmgw-")]
    assert left == [], left
