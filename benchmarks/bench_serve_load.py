"""HTTP serving cost: GET /recommend under load against in-process Service.recommend on the same users.

Starts `python -m recsuite.course.serve` (lesson 05's fused model; it needs the lessons' artefacts, so run `make run`
first) in a process of its own on a free loopback port, waits for /health, sends WARMUP requests, then
REQUESTS GET /recommend (k = K, users drawn with SEED) from CONCURRENCY aiohttp workers, and stops the server.
Every answer is compared with the same call to Service.recommend in this process (the items, their order, titles,
scores and explanations must be identical). Prints p50/p95/p99 latency, throughput and the error count (must be
0), and beside them:
- the peer: the same calls to Service.recommend in this process, one after another; the ratio (in-process calls/s
  over HTTP requests/s) is what the HTTP layer costs on this machine;
- the ceiling: the same server stack and load generator against a trivial FastAPI endpoint that returns ten
  fixed items, in a process of its own: what HTTP alone allows here.
The client shares the CPU with the server, so on a 2-core machine every rate is a lower bound.
Run: `make bench` (after `make run`).
"""

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402

from recsuite.course.serve import MissingArtefacts, load_service  # noqa: E402

REQUESTS = 2000
CONCURRENCY = 8
WARMUP = 100
K = 10
SEED = 0
START_TIMEOUT_S = 120
TARGET_RATE, TARGET_P99_MS = 1500, 20.0

# the ceiling: a FastAPI endpoint that does no work, served by the same uvicorn as the service
TRIVIAL_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()
ITEMS = [{"item_id": i, "title": f"Movie {i} (1995)", "score": 0.5, "explanation": "Because you watched X."}
         for i in range(10)]

@app.get("/health")
async def health():
    return {"status": "ok"}

@app.get("/recommend")
async def recommend(user_id: int, k: int = 10):
    return JSONResponse({"user_id": user_id, "k": k, "items": ITEMS[:k]})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


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


async def load(url: str, users, expected=None) -> tuple[np.ndarray, int, float]:
    """Latencies (s), error count and wall time of one GET /recommend per user, CONCURRENCY at a time.

    An answer is an error unless it is a 200 with K items and, when ``expected`` maps users to items, those items.
    """
    latencies, errors = [], 0
    todo = iter(users)  # shared by the workers: each user is requested once
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, trust_env=False) as client:

        async def worker():
            nonlocal errors
            for user in todo:
                start = time.perf_counter()
                try:
                    async with client.get("/recommend", params={"user_id": int(user), "k": K}) as r:
                        body = await r.json() if r.status == 200 else None
                    ok = body is not None and len(body["items"]) == K
                    ok = ok and (expected is None or body["items"] == expected[int(user)])
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - start
    return np.asarray(latencies), errors, wall


def serve_and_load(command: list[str], port: int, users, expected=None):
    """Start ``command`` (a server on ``port``), load it, stop it: (latencies, errors, wall, start-up seconds)."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.perf_counter()
            wait_healthy(url, proc, START_TIMEOUT_S)
            start_s = time.perf_counter() - started
            asyncio.run(load(url, users[:WARMUP], expected))
            lat, errors, wall = asyncio.run(load(url, users[WARMUP:], expected))
        except RuntimeError as e:
            log.seek(0)
            raise RuntimeError(f"{e}; its output:\n{log.read()}") from None
        finally:
            proc.terminate()  # SIGTERM: uvicorn finishes what it is answering and exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return lat, errors, wall, start_s


def line(name: str, lat: np.ndarray, errors: int, wall: float) -> str:
    p50, p95, p99 = np.percentile(lat * 1000, [50, 95, 99])
    return (f"{name:38s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  p99 {p99:6.2f} ms  {REQUESTS / wall:7.1f} req/s  "
            f"errors {errors}")


def main() -> int:
    try:
        service = load_service(seed=SEED)
    except MissingArtefacts as e:
        print(f"{e}\n\nbench_serve_load needs the served model's artefacts: run `make run` first.", file=sys.stderr)
        return 2
    rng = np.random.default_rng(SEED)
    users = rng.choice(service.user_ids, size=REQUESTS + WARMUP)

    for user in users[:WARMUP]:  # the peer, which also gives the answers HTTP must return
        service.recommend(int(user), K)
    expected = {}
    start = time.perf_counter()
    for user in users[WARMUP:]:
        expected[int(user)] = service.recommend(int(user), K)
    peer_rate = REQUESTS / (time.perf_counter() - start)
    for user in users[:WARMUP]:
        expected.setdefault(int(user), service.recommend(int(user), K))

    try:
        port = free_port()
        lat, errors, wall, start_s = serve_and_load(
            [sys.executable, "-m", "recsuite.course.serve", "--port", str(port), "--seed", str(SEED),
             "--log-level", "warning"], port, users, expected)
        port = free_port()
        t_lat, t_errors, t_wall, _ = serve_and_load([sys.executable, "-c", TRIVIAL_SERVER, str(port)], port, users)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1

    rate, p99 = REQUESTS / wall, float(np.percentile(lat * 1000, 99))
    stack = ", ".join(f"{m} {'yes' if importlib.util.find_spec(m) else 'no'}" for m in ("uvloop", "httptools"))
    print(f"served model: {service.model}")
    print(f"{REQUESTS} GET /recommend (k={K}, {service.n_users} users, seed {SEED}) at concurrency {CONCURRENCY} "
          f"on {os.cpu_count()} CPUs; aiohttp load generator; uvicorn ({stack}); server started in {start_s:.1f} s")
    print(line("HTTP, the service (own process):", lat, errors, wall))
    print(line("HTTP, a trivial endpoint (ceiling):", t_lat, t_errors, t_wall))
    print(f"{'in-process Service.recommend:':38s} {1000 / peer_rate:6.2f} ms per call"
          f"{'':31s}{peer_rate:7.1f} calls/s")
    print(f"  HTTP overhead (in-process calls/s / HTTP req/s): {peer_rate / rate:.2f}x; the service reaches "
          f"{rate / (REQUESTS / t_wall):.0%} of the trivial endpoint's rate")
    print(f"  target: >= {TARGET_RATE} req/s with p99 <= {TARGET_P99_MS:g} ms and 0 errors: "
          f"{'met' if rate >= TARGET_RATE and p99 <= TARGET_P99_MS and not errors else 'NOT met'} "
          f"({rate:.0f} req/s, p99 {p99:.1f} ms, {errors} errors; every answer compared with the in-process call)")
    if errors or t_errors:
        print(f"{errors} of {REQUESTS} requests failed or differed from the in-process answer "
              f"({t_errors} on the trivial endpoint)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
