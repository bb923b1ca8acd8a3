"""HTTP serving cost: GET /recommend under load against in-process Service.recommend on the same users.

Starts `python -m recsuite.course.serve` (lesson 05's fused model; it needs the lessons' artefacts, so run `make run`
first) in a process of its own on a free loopback port, waits for /health, sends WARMUP requests, then
REQUESTS GET /recommend (k = K, users drawn with SEED) from CONCURRENCY httpx.AsyncClient workers, and stops
the server. Prints p50/p95/p99 latency, throughput and the error count (must be 0), and the named peer: the
same calls to Service.recommend in this process, one after another. The ratio (in-process calls/s over HTTP
requests/s) is what the HTTP layer costs on this machine; the client shares the CPU with the server, so on a
2-core machine both numbers are lower bounds. Run: `make bench` (after `make run`).
"""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from recsuite.course.serve import MissingArtefacts, load_service  # noqa: E402

REQUESTS = 2000
CONCURRENCY = 8
WARMUP = 100
K = 10
SEED = 0
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} while starting")
        try:
            with opener.open(url + "/health", timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not answer /health within {timeout} s")


async def load(url: str, users) -> tuple[np.ndarray, int, float]:
    """Latencies (s), error count and wall time of one GET /recommend per user, CONCURRENCY at a time."""
    latencies, errors = [], 0
    todo = iter(users)  # shared by the workers: each user is requested once
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0, trust_env=False) as client:

        async def worker():
            nonlocal errors
            for user in todo:
                start = time.perf_counter()
                try:
                    r = await client.get("/recommend", params={"user_id": int(user), "k": K})
                    ok = r.status_code == 200 and len(r.json()["items"]) == K
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - start
    return np.asarray(latencies), errors, wall


def main() -> int:
    try:
        service = load_service(seed=SEED)
    except MissingArtefacts as e:
        print(f"{e}\n\nbench_serve_load needs the served model's artefacts: run `make run` first.", file=sys.stderr)
        return 2
    rng = np.random.default_rng(SEED)
    users = rng.choice(service.user_ids, size=REQUESTS + WARMUP)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "recsuite.course.serve", "--port", str(port), "--seed", str(SEED),
                                 "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.perf_counter()
            wait_healthy(url, proc, START_TIMEOUT_S)
            start_s = time.perf_counter() - started
            asyncio.run(load(url, users[:WARMUP]))
            lat, errors, wall = asyncio.run(load(url, users[WARMUP:]))
        except RuntimeError as e:
            log.seek(0)
            print(f"{e}; its output:\n{log.read()}", file=sys.stderr)
            return 1
        finally:
            proc.terminate()  # SIGTERM: uvicorn finishes what it is answering and exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    for user in users[:WARMUP]:
        service.recommend(int(user), K)
    start = time.perf_counter()
    for user in users[WARMUP:]:
        service.recommend(int(user), K)
    peer_rate = REQUESTS / (time.perf_counter() - start)

    p50, p95, p99 = np.percentile(lat * 1000, [50, 95, 99])
    rate = REQUESTS / wall
    print(f"served model: {service.model}")
    print(f"{REQUESTS} GET /recommend (k={K}, {service.n_users} users, seed {SEED}) at concurrency {CONCURRENCY} "
          f"on {os.cpu_count()} CPUs; server started in {start_s:.1f} s")
    print(f"HTTP (uvicorn + FastAPI, own process): p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  p99 {p99:6.2f} ms  "
          f"{rate:7.1f} req/s  errors {errors}")
    print(f"in-process Service.recommend:          {1000 / peer_rate:6.2f} ms per call          {peer_rate:7.1f} calls/s")
    print(f"  HTTP overhead (in-process calls/s / HTTP req/s): {peer_rate / rate:.2f}x  (errors must be 0)")
    if errors:
        print(f"{errors} of {REQUESTS} requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
