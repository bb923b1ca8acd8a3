"""Execute the lessons headless, in order, and write the leaderboard: ``python -m recsuite.runner``.

``make run`` calls this. Executed copies go to ``build/notebooks/`` (``--inplace`` rewrites the
notebooks themselves, which is how their committed outputs are produced). Notebooks run in a kernel of
this very Python environment, whatever kernels the machine has registered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _pin_kernel_to_this_env(tmp: Path) -> str:
    name = "recsuite-python3"
    spec = tmp / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "recsuite", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(tmp), os.environ.get("JUPYTER_PATH")]))
    return name


def execute(paths: list[Path], out_dir: Path | None, timeout: int = 1800) -> list[tuple[str, float]]:
    """Run each notebook top to bottom; stop at the first failing cell. Returns (name, seconds) pairs."""
    import nbformat
    from nbclient import NotebookClient

    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        kernel = _pin_kernel_to_this_env(Path(tmp))
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            print(f"running {path.name} ...", flush=True)
            client = NotebookClient(
                nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
            )
            try:
                client.execute()
            finally:
                nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
                target = path if out_dir is None else out_dir / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, target)
            seconds = time.perf_counter() - start
            timings.append((path.name, seconds))
            print(f"  done in {seconds:.0f} s -> {target}", flush=True)
    return timings


def main(argv: list[str] | None = None) -> int:
    from recsuite.paths import build_dir, project_root
    from recsuite.results import results_path, write_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb in order")
    parser.add_argument("--inplace", action="store_true", help="write outputs into the notebooks themselves")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    out_dir = None if args.inplace else build_dir() / "notebooks"
    start = time.perf_counter()
    timings = execute([p.resolve() for p in paths], out_dir, args.timeout)
    md = write_markdown(results_path())
    print("\n".join(f"{name:45s} {sec:7.0f} s" for name, sec in timings))
    print(f"total {time.perf_counter() - start:.0f} s; leaderboard: {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
