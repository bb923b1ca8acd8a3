"""The noise floor: how much every recorded metric and every lesson check moves across machines and seeds.

Re-runs the lessons (every model they record, every ``noise.Expect`` check) under numerical variants that
any x86-64 machine offers, and under several seeds, each run in a fresh ``RECSUITE_HOME`` (no shared
caches, so nothing computed under one variant is read by another):

  native        this machine's own kernels, the lessons' default thread counts
  aten-default  ATEN_CPU_CAPABILITY=default (torch's portable kernels instead of AVX2/AVX-512)
  aten-avx2     ATEN_CPU_CAPABILITY=avx2 (skipped where it is the machine's own capability)
  threads-1     THREADS=1 in every lesson, OMP/MKL/OpenBLAS one thread
  threads-2     THREADS=2 in every lesson, OMP/MKL/OpenBLAS two threads
  blas-<core>   OPENBLAS_CORETYPE=<core> for that run only (Haswell, and Sandybridge, which also
                changes the OpenBLAS that SciPy and implicit link)

The numerical variants run at SEED=0; the seeds (SEED=1, 2, ... passed to every lesson's parameters
cell) run with the native kernels. Writes ``build/noise.md`` (per recorded model and metric, and per
check: the spread across variants and across seeds, and whether each check's tolerance covers both) and
``build/noise.json`` (every value of every run), and ``build/noise_summary.md`` (NDCG@10 of every recorded
model: the README's table). Run by hand, not in CI; it takes a while (one full
run of the lessons per variant and seed; ``--jobs 2`` runs two at a time):

    .venv/bin/python benchmarks/noise_floor.py --jobs 2
    .venv/bin/python benchmarks/noise_floor.py --notebooks 03 04 --variants native threads-2 --seeds 0 1
    .venv/bin/python benchmarks/noise_floor.py --report-only      # re-read the runs of an earlier call

After updating the tolerances, judge the measured runs against the lessons' new expectations without
rerunning them: run the lessons once with ``RECSUITE_EXPECT_LOG=checks.jsonl`` and pass
``--report-only --against checks.jsonl``. Checks and choices that the lessons no longer make are listed as
retired (their measured values are kept).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from recsuite.course.runner import lessons

ROOT = Path(__file__).resolve().parents[1]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
VARIANTS = {
    "native": ({}, {}),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, {}),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, {}),
    "threads-1": ({v: "1" for v in THREAD_ENV}, {"THREADS": 1}),
    "threads-2": ({v: "2" for v in THREAD_ENV}, {"THREADS": 2}),
    "blas-Haswell": ({"OPENBLAS_CORETYPE": "Haswell"}, {}),
    "blas-Sandybridge": ({"OPENBLAS_CORETYPE": "Sandybridge"}, {}),
}
DEFAULT_VARIANTS = ("native", "aten-default", "aten-avx2", "threads-1", "threads-2", "blas-Haswell", "blas-Sandybridge")


def native_capability() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().lower()


def notebooks(selected) -> list[Path]:
    paths = lessons(ROOT)
    if selected:
        paths = [p for p in paths if p.name[:2] in set(selected)]
        if not paths:
            raise SystemExit(f"no notebook matches {selected}")
    return paths


def knobs(path: Path) -> set[str]:
    import nbformat

    from recsuite.course.runner import knob_names

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return knob_names(cells[0].source) if cells else set()


def run_one(work: Path, variant: str, seed: int, paths: list[Path], timeout: int) -> dict:
    """One variant x seed: every notebook in its own runner call, in a fresh RECSUITE_HOME."""
    env_extra, params = VARIANTS[variant]
    home = work / f"{variant}-seed{seed}"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env_extra, "RECSUITE_HOME": str(home), "RECSUITE_EXPECT": "record",
           "RECSUITE_EXPECT_LOG": str(home / "checks.jsonl"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    status = {}
    for path in paths:
        done = home / "done" / path.name
        if done.is_file():
            status[path.name] = json.loads(done.read_text())
            continue
        own = {k: v for k, v in params.items() if k in knobs(path)}  # THREADS only where the lesson has the knob
        argv = [sys.executable, "-m", "recsuite.course.runner", str(path), "--out", str(home / "notebooks"),
                "--param", f"SEED={seed}", *itertools.chain(*(["--param", f"{k}={v!r}"] for k, v in own.items()))]
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        result = {"rc": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
                  "tail": (proc.stdout + proc.stderr)[-3000:] if proc.returncode else ""}
        status[path.name] = result
        done.parent.mkdir(exist_ok=True)
        done.write_text(json.dumps(result))
        print(f"  {variant:16s} seed {seed}  {path.name:40s} rc={proc.returncode} {result['seconds']:.0f} s", flush=True)
    return status


def collect(work: Path) -> dict:
    runs = {}
    for home in sorted(p for p in work.iterdir() if p.is_dir() and "-seed" in p.name):
        variant, seed = home.name.rsplit("-seed", 1)
        rows = json.loads((home / "build" / "results.json").read_text())["runs"] if (home / "build" / "results.json").is_file() else []
        checks = [json.loads(line) for line in (home / "checks.jsonl").read_text().splitlines()] if (home / "checks.jsonl").is_file() else []
        status = {p.name: json.loads(p.read_text()) for p in (home / "done").glob("*")} if (home / "done").is_dir() else {}
        runs[home.name] = {"variant": variant, "seed": int(seed), "results": rows, "checks": checks, "status": status}
    return runs


def _spread(values) -> float:
    return max(values) - min(values) if values else float("nan")


def current_expectations(paths) -> dict:
    """(notebook, check name) -> (expected, tol or None) from check logs (``RECSUITE_EXPECT_LOG``) of the lessons."""
    found = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            c = json.loads(line)
            found[(c["notebook"], c["name"])] = (c["expected"], c.get("tol"))
    if not found:
        raise ValueError(f"--against: no checks in {[str(p) for p in paths]}")
    return found


def analyse(runs: dict, current: dict | None = None) -> dict:
    """Per metric and per check: value at native seed 0, spread over variants (seed 0), over seeds (native).

    ``current`` (from ``current_expectations``) replaces the expectations the runs were made with; checks it
    does not name are marked retired."""
    metric_values, check_values, check_meta, choices = {}, {}, {}, {}
    for name, run in runs.items():
        for r in run["results"]:
            for m, v in r["metrics"].items():
                if isinstance(v, (int, float)) and m != "users":
                    metric_values.setdefault((r["notebook"], r["model"], r["eval_set"], m), {})[name] = float(v)
        for c in run["checks"]:
            key = (c["notebook"], c["name"])
            if "tol" in c:
                check_values.setdefault(key, {})[name] = float(c["value"])
                check_meta[key] = (c["expected"], c["tol"])
            else:
                choices.setdefault(key, {})[name] = json.dumps(c["value"], sort_keys=True)
                check_meta[key] = (c["expected"], None)

    retired = set()
    if current is not None:
        # gone, or now of another kind (a numeric check that became a choice, or the reverse)
        retired = {key for key in check_meta if key not in current
                   or (current[key][1] is None) != (check_meta[key][1] is None)}
        check_meta.update({key: current[key] for key in check_meta if key in current and key not in retired})
        for key, values in choices.items():  # a choice narrowed to fewer keys is judged on the keys it still has
            wanted = check_meta[key][0]
            if key not in retired and isinstance(wanted, dict):
                for name, v in values.items():
                    v = json.loads(v)
                    if isinstance(v, dict):
                        values[name] = json.dumps({k: v.get(k) for k in wanted}, sort_keys=True)

    def split(values: dict):
        variants = {n: v for n, v in values.items() if n.endswith("-seed0")}
        seeds = {n: v for n, v in values.items() if n.startswith("native-seed")}
        return variants, seeds

    metrics = []
    for key, values in sorted(metric_values.items()):
        variants, seeds = split(values)
        metrics.append({"notebook": key[0], "model": key[1], "eval_set": key[2], "metric": key[3],
                        "native": values.get("native-seed0"), "variant_spread": _spread(list(variants.values())),
                        "seed_spread": _spread(list(seeds.values())), "runs": len(values)})
    checks = []
    for key, values in sorted(check_values.items()):
        variants, seeds = split(values)
        expected, tol = check_meta[key]
        worst = max(abs(v - expected) for v in values.values())
        checks.append({"notebook": key[0], "name": key[1], "expected": expected, "tol": tol,
                       "native": values.get("native-seed0"), "min": min(values.values()), "max": max(values.values()),
                       "variant_spread": _spread(list(variants.values())), "seed_spread": _spread(list(seeds.values())),
                       "worst_deviation": worst, "covered": worst <= tol + 1e-12, "runs": len(values),
                       "retired": key in retired})
    picks = []
    for key, values in sorted(choices.items()):
        distinct = sorted(set(values.values()))
        picks.append({"notebook": key[0], "name": key[1], "expected": check_meta[key][0], "distinct": distinct,
                      "stable": len(distinct) == 1, "runs": len(values), "retired": key in retired,
                      "as_expected": distinct == [json.dumps(check_meta[key][0], sort_keys=True)],
                      "by_run": {n: v for n, v in sorted(values.items())}})
    failed = [{"run": n, "notebook": nb, "tail": s.get("tail", "")} for n, r in runs.items()
              for nb, s in r["status"].items() if s.get("rc")]
    return {"metrics": metrics, "checks": checks, "choices": picks, "failed": failed,
            "runs": {n: {"variant": r["variant"], "seed": r["seed"],
                         "seconds": sum(s.get("seconds", 0) for s in r["status"].values())} for n, r in runs.items()}}


def fmt(x, digits=4):
    return "—" if x is None or x != x else f"{x:.{digits}f}"


def markdown(report: dict, capability: str) -> str:
    runs = report["runs"]
    variants = sorted({r["variant"] for r in runs.values()})
    seeds = sorted({r["seed"] for r in runs.values()})
    lines = ["# Noise floor", "",
             f"Machine: torch CPU capability `{capability}`; {os.cpu_count()} cores. Variants (at SEED=0): "
             + ", ".join(f"`{v}`" for v in variants) + f". Seeds (native kernels): {seeds}.",
             "*variant spread* = max − min over the numerical variants at SEED=0; *seed spread* = max − min over "
             "the seeds with the native kernels. *retired*: a check the current lessons no longer make in that form "
             "(narrowed or renamed after this run; its measured values are kept).", ""]
    if report["failed"]:
        lines += ["## Runs that failed", ""] + [f"- `{f['run']}` {f['notebook']}: `{f['tail'].strip().splitlines()[-1] if f['tail'].strip() else ''}`"
                                                for f in report["failed"]] + [""]
    lines += ["## Checks (`noise.Expect`)", "",
              "| notebook | check | expected ± tol | native | min | max | variant spread | seed spread | covered |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['notebook']} | {c['name']} | {c['expected']:g} ± {c['tol']:g} | {fmt(c['native'])} | "
                     f"{fmt(c['min'])} | {fmt(c['max'])} | {fmt(c['variant_spread'])} | {fmt(c['seed_spread'])} | "
                     f"{'retired' if c.get('retired') else 'yes' if c['covered'] else '**no**'} |")
    lines += ["", "## Choices (`Expect.choice`)", "", "| notebook | choice | expected | stable | as expected | distinct values |",
              "|---|---|---|---|---|---|"]
    for c in report["choices"]:
        lines.append(f"| {c['notebook']} | {c['name']} | `{json.dumps(c['expected'])}` | "
                     f"{'retired' if c.get('retired') else 'yes' if c['stable'] else '**no**'} | "
                     f"{'—' if c.get('retired') else 'yes' if c['as_expected'] else '**no**'} | "
                     f"{'; '.join(f'`{d}`' for d in c['distinct'])} |")
    lines += ["", "## Recorded metrics (`build/results.json`)", "",
              "| notebook | model | eval set | metric | native | variant spread | seed spread |", "|---|---|---|---|---|---|---|"]
    for m in report["metrics"]:
        lines.append(f"| {m['notebook']} | {m['model']} | {m['eval_set']} | {m['metric']} | {fmt(m['native'])} | "
                     f"{fmt(m['variant_spread'])} | {fmt(m['seed_spread'])} |")
    return "\n".join(lines) + "\n"


def summary(report: dict, metric: str = "ndcg@10") -> str:
    """One row per recorded model: its ``metric`` per eval set with the variant and seed spreads (the README table)."""
    rows = {}
    for m in report["metrics"]:
        if m["metric"] == metric:
            rows.setdefault((m["notebook"], m["model"]), {})[m["eval_set"]] = m
    sets = ("valid", "test", "cold_test")
    lines = ["| lesson | model | " + " | ".join(f"{es} {metric} (spread: variants / seeds)" for es in sets) + " |",
             "|---|---|" + "---|" * len(sets)]
    for (nb, model), by_set in sorted(rows.items()):
        cells = []
        for es in sets:
            m = by_set.get(es)
            cells.append("" if m is None else f"{fmt(m['native'], 3)} ({fmt(m['variant_spread'], 4)} / {fmt(m['seed_spread'], 4)})")
        lines.append(f"| {nb[:2]} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS), choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--notebooks", nargs="*", default=None, help="two-digit prefixes, e.g. 03 04 (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "noise", help="one RECSUITE_HOME per run here")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per notebook run")
    parser.add_argument("--report-only", action="store_true", help="only re-read the runs in --work")
    parser.add_argument("--against", nargs="*", type=Path, default=None,
                        help="check logs of the current lessons (RECSUITE_EXPECT_LOG): judge the runs against them")
    args = parser.parse_args(argv)
    capability = native_capability()
    if not args.report_only:
        todo = [(v, 0) for v in args.variants if not (v == f"aten-{capability}")]
        skipped = [v for v in args.variants if v == f"aten-{capability}"]
        if skipped:
            print(f"skipping {skipped}: it is this machine's own torch capability (the native run covers it)")
        todo += [("native", s) for s in args.seeds if s != 0 and ("native", s) not in todo]
        if 0 not in args.seeds:
            todo = [t for t in todo if t[1] != 0]
        paths = notebooks(args.notebooks)
        print(f"{len(todo)} runs x {len(paths)} notebooks into {args.work}", flush=True)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(lambda t: run_one(args.work, t[0], t[1], paths, args.timeout), todo))
    report = analyse(collect(args.work), current_expectations(args.against) if args.against else None)
    out = ROOT / "build"
    out.mkdir(exist_ok=True)
    (out / "noise.json").write_text(json.dumps(report, indent=1))
    (out / "noise.md").write_text(markdown(report, capability))
    (out / "noise_summary.md").write_text(summary(report))
    bad = [c for c in report["checks"] if not c["covered"] and not c["retired"]]
    flips = [c for c in report["choices"] if not (c["stable"] and c["as_expected"]) and not c["retired"]]
    print(f"wrote {out / 'noise.md'}: {len(report['checks'])} checks ({len(bad)} not covered by their tolerance), "
          f"{len(report['choices'])} choices ({len(flips)} not stable or not as expected), {len(report['failed'])} failed notebook runs"
          + (f"; retired: {sum(c['retired'] for c in report['checks'] + report['choices'])}" if args.against else ""))
    for c in bad:
        print(f"  not covered: {c['notebook']} {c['name']}: {c['min']:.4f}..{c['max']:.4f} vs {c['expected']} ± {c['tol']}")
    for c in flips:
        print(f"  not stable or not as expected: {c['notebook']} {c['name']}: {c['distinct']} vs {c['expected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
