"""DBOS Transact running the same ten-step sequential workflow as Flow's benchmark:
each step a GET to the same local HTTP server, each step's result checkpointed in the
same PostgreSQL server. Prints the p50/p95 of one run at a time, then the runs per
second of RUNS runs started from THREADS threads (the workflow runs in the calling
thread, as DBOS runs a directly called workflow).

Usage: dbos_bench.py DATABASE_URL BASE_URL RUNS THREADS
(scripts/bench-postgres.sh installs DBOS from PyPI into target/bench-dbos and runs it.)
"""

import http.client
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig

database_url, base, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
upstream = urllib.parse.urlparse(base)
local = threading.local()


def get(path: str) -> int:
    """A GET on this thread's kept-alive connection (as Flow's client keeps its own)."""
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(upstream.hostname, upstream.port)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


config: DBOSConfig = {
    "name": "flow-bench",
    "system_database_url": database_url,
    "log_level": "WARNING",
    "sys_db_pool_size": threads + 10,
}
DBOS(config=config)


@DBOS.step()
def call(i: int) -> int:
    return get(f"/{i}")


@DBOS.workflow()
def ten() -> int:
    status = 0
    for i in range(10):
        status = call(i)
    return status


DBOS.launch()
samples = []
for i in range(120):
    start = time.perf_counter()
    ten()
    if i >= 20:
        samples.append(time.perf_counter() - start)
samples.sort()
print(
    f"dbos latency: 10 sequential http steps, p50 {samples[len(samples) // 2] * 1e3:.2f} ms, "
    f"p95 {samples[len(samples) * 95 // 100] * 1e3:.2f} ms over {len(samples)} runs"
)
start = time.perf_counter()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(lambda _: ten(), range(runs)))
elapsed = time.perf_counter() - start
print(f"dbos throughput: {runs} runs from {threads} threads in {elapsed:.2f}s = {runs / elapsed:.0f} runs/s")
DBOS.destroy()
