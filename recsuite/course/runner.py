"""Execute the lessons headless, in order, and write the leaderboard: ``python -m recsuite.course.runner``.

``make run`` calls this. Executed copies go to ``build/notebooks/`` (``--inplace`` rewrites the
notebooks themselves, which is how their committed outputs are produced, with progress bars off).
``--param SEED=1`` runs the lessons with a knob changed: like papermill, the assignment goes into a cell
right after the cell tagged ``parameters``. Notebooks run in a kernel of this very Python environment,
whatever kernels the machine has registered.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from recsuite.core.cache import atomic_write
from recsuite.core.device import usable_cores
from recsuite.core.paths import build_dir, project_root
from recsuite.course import results


def _pin_kernel_to_this_env(tmp: Path) -> str:
    name = "recsuite-python3"
    spec = tmp / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "recsuite", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(tmp), os.environ.get("JUPYTER_PATH")]))
    return name


#: A lesson is a notebook named ``NN_name.ipynb`` in ``notebooks/``, NN its place in the course (01, 02, ...).
LESSON_GLOB = "notebooks/[0-9][0-9]_*.ipynb"


def lessons(root=None) -> list[Path]:
    """The lesson notebooks of the project at ``root`` (default: this checkout), in course order: what ``make run``
    executes, ``make test`` checks and the website shows."""
    return sorted(Path(root if root is not None else project_root()).glob(LESSON_GLOB))


def parse_param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> (NAME, value); VALUE is a Python literal (``1``, ``0.5``, ``'cpu'``, ``None``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str NAME=VALUE, got {type(text).__name__} {text!r}"[:200])
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not name.isupper():
        raise ValueError(f"a parameter must look like NAME=VALUE with an UPPER_CASE name, got {text!r}")
    try:
        return name, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"the value of {name} must be a Python literal (1, 0.5, 'text', None), got {value!r}") from None


def knob_names(source: str) -> set[str]:
    """The names a parameters cell assigns (``A = 1`` and ``A, B = 1, 2``)."""
    if not isinstance(source, str):
        raise TypeError(f"source must be the str source of a parameters cell, got {type(source).__name__}")
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"source must be valid Python, got a syntax error at line {err.lineno}: {err.msg}") from None
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
    return names


def _parameter_dict(parameters, none_ok: bool = True) -> dict:
    if parameters is None and none_ok:
        return {}
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict NAME -> value, got {type(parameters).__name__}")
    bad = [n for n in parameters if not isinstance(n, str) or not n.isidentifier()]
    if bad:
        raise ValueError(f"parameters must be keyed by knob names (identifiers), got {bad[0]!r}")
    for n, v in parameters.items():  # the value is written into the notebook as repr(v): it must read back
        try:
            ok = ast.literal_eval(repr(v)) == v
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            ok = False
        if not ok:
            raise ValueError(f"parameters[{n!r}] must be a Python literal (1, 0.5, 'text', None), got {repr(v)[:80]}")
    return parameters


def _notebook_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)) or not isinstance(paths, (list, tuple)):
        raise TypeError(f"paths must be a list of notebook paths, got {type(paths).__name__}")
    bad = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise TypeError(f"paths must hold notebook paths (str or Path), got {type(bad[0]).__name__}")
    return [Path(p) for p in paths]


def _parameters_cell(nb) -> int | None:
    where = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    return where[0] if where else None


def inject_parameters(nb, parameters: dict) -> dict:
    """Insert ``NAME = value`` lines in a new cell after the cell tagged ``parameters`` (papermill's convention).

    Only the knobs that this notebook's parameters cell assigns are set; returns those.
    """
    import nbformat

    _parameter_dict(parameters, none_ok=False)
    if not hasattr(nb, "cells"):
        raise TypeError(f"nb must be a notebook read with nbformat.read(..., as_version=4), got {type(nb).__name__}")
    at = _parameters_cell(nb)
    if at is None or not parameters:
        return {}
    own = {n: v for n, v in parameters.items() if n in knob_names(nb.cells[at].source)}
    if own:
        source = "# injected parameters\n" + "\n".join(f"{n} = {v!r}" for n, v in own.items())
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return own


def check_parameters(paths: list[Path], parameters: dict) -> None:
    """Raise ValueError when a parameter is a knob of none of the notebooks."""
    import nbformat

    paths = _notebook_paths(paths)
    _parameter_dict(parameters, none_ok=False)
    knobs = set()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        at = _parameters_cell(nb)
        knobs |= knob_names(nb.cells[at].source) if at is not None else set()
    unknown = sorted(set(parameters) - knobs)
    if unknown:
        raise ValueError(f"parameters {unknown} are knobs of none of {[p.name for p in paths]}")


def notebook_seconds(path) -> float:
    """Wall time of a notebook's last recorded run: the sum of its cells' execution times (0 when none were kept)."""
    total = 0.0
    for cell in json.loads(Path(path).read_text()).get("cells", []):
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            start, end = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - start).total_seconds()
    return total


def execute(paths: list[Path], out_dir: Path | None, timeout: int = 1800, parameters: dict | None = None,
            allow_errors: bool = False, jobs: int = 1) -> list[tuple[str, float]]:
    """Run each notebook top to bottom in its own kernel; stop at the first failing cell. Returns (name, seconds)
    pairs in the order of ``paths``.

    With ``jobs`` > 1 that many notebooks run at once, the longest (by their last recorded run) first, each
    kernel given ``cores // jobs`` BLAS/OpenMP threads unless ``OMP_NUM_THREADS`` is set: two kernels that each
    spin one OpenMP thread per core stall each other. Lessons may run in any order and at the same time, since
    every artefact is built on demand and written atomically. After a failure no further notebook starts;
    the ones running finish, then the first error is raised.
    """

    paths = _notebook_paths(paths)
    parameters = _parameter_dict(parameters)
    if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be None or a folder (str or Path), got {type(out_dir).__name__}")
    out_dir = None if out_dir is None else Path(out_dir)
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise TypeError(f"timeout must be an int number of seconds per cell, got {type(timeout).__name__} {timeout!r}")
    if timeout < 1:
        raise ValueError(f"timeout must be a positive number of seconds per cell, got {timeout!r}")
    if not isinstance(allow_errors, bool):
        raise TypeError(f"allow_errors must be True or False, got {allow_errors!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise (TypeError if not isinstance(jobs, int) or isinstance(jobs, bool) else ValueError)(
            f"jobs must be an int >= 1 (notebooks run at once), got {jobs!r}")
    check_parameters(paths, parameters or {})
    if out_dir is None and parameters:
        raise ValueError("parameters cannot be combined with out_dir=None: an in-place run rewrites the committed "
                         "notebooks, and the injected cell would stay in them")
    timings = []
    jupyter_path = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory() as tmp:
        kernel = _pin_kernel_to_this_env(Path(tmp))
        try:
            timings = _run_all(paths, out_dir, timeout, parameters, allow_errors, tmp, kernel, jobs)
        finally:  # the pinned kernel's folder is about to go: the environment must not keep pointing at it
            if jupyter_path is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = jupyter_path
    return timings


def _run_all(paths, out_dir, timeout, parameters, allow_errors, tmp, kernel, jobs) -> list:
    jobs = min(jobs, len(paths))  # one notebook keeps every core's threads
    if jobs <= 1:
        return [_run_one(i, path, out_dir, timeout, parameters, allow_errors, tmp, kernel)
                for i, path in enumerate(paths)]
    threads = str(max(1, usable_cores() // jobs))
    saved = {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    for var in saved:
        os.environ.setdefault(var, threads)  # the kernels inherit it
    try:
        return _run_parallel(paths, out_dir, timeout, parameters, allow_errors, tmp, kernel, jobs)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)


def _run_parallel(paths, out_dir, timeout, parameters, allow_errors, tmp, kernel, jobs) -> list:
    order = sorted(range(len(paths)), key=lambda i: -notebook_seconds(paths[i]))  # longest first
    stop = threading.Event()
    timings, errors = {}, []

    def run(i):
        if stop.is_set():
            return
        try:
            timings[i] = _run_one(i, paths[i], out_dir, timeout, parameters, allow_errors, tmp, kernel)
        except BaseException as err:
            stop.set()
            errors.append(err)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, order))
    if errors:
        raise errors[0]
    return [timings[i] for i in range(len(paths))]


def _run_one(i, path, out_dir, timeout, parameters, allow_errors, tmp, kernel) -> tuple[str, float]:
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {})
    since = time.time()  # the rows this run records are those recorded from now on (results.settle)
    start = time.perf_counter()
    print(f"running {path.name} ...", flush=True)
    # IPC sockets in a private folder: nothing listens on the network, and ipykernel does not warn
    # about unencrypted TCP
    km = KernelManager(kernel_name=kernel, transport="ipc", ip=str(Path(tmp) / f"kernel-{i}"))
    client = NotebookClient(
        nb, km=km, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}},
        allow_errors=allow_errors,
    )
    failed = True
    try:
        client.execute()
        failed = False
    finally:
        if km.has_kernel:  # a kernel the runner started is the runner's to stop (nbclient leaves a given km running)
            km.shutdown_kernel(now=True)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        if not failed:  # the rows it recorded travel with the executed notebook: the website's leaderboard reads them
            nb.metadata.setdefault("recsuite", {})["results"] = results.settle(path.stem, since)
        # an in-place run that failed leaves the notebook as it was; its half-run copy goes to build/
        if out_dir is None and failed:
            target = build_dir() / "notebooks" / f"{path.stem}.failed.ipynb"
        else:
            target = path if out_dir is None else out_dir / path.name
        atomic_write(target, lambda fh: nbformat.write(nb, fh), text=True)
    seconds = time.perf_counter() - start
    print(f"  {path.name} done in {seconds:.0f} s -> {target}", flush=True)
    return path.name, seconds


def time_table(timings, wall: float) -> str:
    """The per-lesson time table ``make run`` prints: one row per notebook, then the sum and the wall time."""
    rows = [f"{'lesson':45s} {'seconds':>8s}"] + [f"{name:45s} {sec:8.0f}" for name, sec in timings]
    rows.append(f"{'sum of lessons':45s} {sum(sec for _, sec in timings):8.0f}")
    rows.append(f"{'wall time':45s} {wall:8.0f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb in order")
    parser.add_argument("--inplace", action="store_true",
                        help="write outputs into the notebooks themselves (progress bars off, as committed)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a knob of the parameters cell, e.g. --param SEED=1 (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed copies (default build/notebooks)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=min(2, usable_cores()),
                        help="notebooks run at once (default: 2, or 1 on one core)")
    if argv is not None and (not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be None or a list of str, got {argv!r}"[:200])
    args = parser.parse_args(argv)
    try:
        parameters = dict(parse_param(p) for p in args.param)
    except ValueError as e:
        parser.error(str(e))
    if args.inplace and parameters:
        parser.error("--inplace writes the committed notebooks; run them with their own defaults")
    paths = args.notebooks or lessons()
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    if args.inplace:
        os.environ.setdefault("TQDM_DISABLE", "1")
    out_dir = None if args.inplace else (args.out or build_dir() / "notebooks")
    start = time.perf_counter()
    paths = [p.resolve() for p in paths]
    try:
        check_parameters(paths, parameters)
    except ValueError as e:
        parser.error(str(e))
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    timings = execute(paths, out_dir, args.timeout, parameters, jobs=args.jobs)
    if not args.notebooks:  # every lesson ran: rows of lessons since renamed or removed go
        results.prune([p.stem for p in paths])
    md = results.write_markdown(results.results_path())
    print(time_table(timings, time.perf_counter() - start))
    print(f"leaderboard: {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
