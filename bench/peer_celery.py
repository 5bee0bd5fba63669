#!/usr/bin/python3
"""peer_celery: the dispatch benchmark's workload on Celery (Redis broker and
Redis result backend), as Debian's python3-celery ships it.

Usage:
    peer_celery.py --redis redis://127.0.0.1:PORT worker
    peer_celery.py --redis redis://127.0.0.1:PORT throughput N | rtt N
    peer_celery.py --redis redis://127.0.0.1:PORT [--sleep-ms S] chain N | fanout N

`worker` runs one Celery worker with two prefork processes (--concurrency 2,
the two workers of the other systems) until killed; bench/dispatch starts it.
The client modes print the same RESULT lines as the C programs; chain and
fanout are bench/pipeline's DAGs (N tasks in a Celery chain, N in a group).

Broker on Redis db 0, results on db 1. Settings are Celery's defaults
except that gossip, mingle and worker heartbeats are off: they only add
cluster chatter to a two-process benchmark.
"""
import argparse
import sys
import time

from celery import Celery

WARMUP_THROUGHPUT = 100
WARMUP_RTT = 20
TIMEOUT_S = 120


def make_app(redis_url):
    base = redis_url.rstrip("/")
    app = Celery("peer_celery", broker=base + "/0", backend=base + "/1")
    app.conf.update(
        # Results are small and read at once; don't keep them around a day.
        result_expires=600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name="peer.noop")
    def noop(sleep_ms=0):
        if sleep_ms:
            time.sleep(sleep_ms / 1000.0)
        return None

    return app, noop


def now_us():
    return time.monotonic_ns() // 1000


def percentile(samples, q):
    """Nearest rank, as bench_util.c computes it."""
    if not samples:
        return 0
    s = sorted(samples)
    rank = q / 100.0 * len(s)
    idx = int(rank)
    if idx < rank:
        idx += 1
    idx = min(max(idx - 1, 0), len(s) - 1)
    return s[idx]


def run_many(noop, n):
    results = [noop.apply_async() for _ in range(n)]
    last = 0
    for r in results:
        r.get(timeout=TIMEOUT_S)
        last = now_us()
        r.forget()
    return last


def throughput(noop, n):
    run_many(noop, WARMUP_THROUGHPUT)
    t0 = now_us()
    last = run_many(noop, n)
    secs = (last - t0) / 1e6
    print("RESULT system=celery mode=throughput n=%d secs=%.3f jobs_per_s=%.0f"
          % (n, secs, n / secs if secs > 0 else 0.0), flush=True)


def rtt(noop, n):
    samples = []
    for i in range(WARMUP_RTT + n):
        t0 = now_us()
        noop.apply_async().get(timeout=TIMEOUT_S)
        t1 = now_us()
        if i >= WARMUP_RTT:
            samples.append(t1 - t0)
    print("RESULT system=celery mode=rtt n=%d p50_us=%d p99_us=%d max_us=%d"
          % (n, percentile(samples, 50), percentile(samples, 99), max(samples)),
          flush=True)


def dag(noop, mode, n, sleep_ms, workers):
    """A chain (each task after the previous one) or a group (all at once)
    of n tasks, to completion, as bench/pipeline_ty.c does for trainyard."""
    from celery import chain, group
    noop.apply_async().get(timeout=TIMEOUT_S)      # warm: connections, worker pool
    sigs = [noop.si(sleep_ms) for _ in range(n)]
    t0 = now_us()
    res = (chain(*sigs) if mode == "chain" else group(sigs)).apply_async()
    res.get(timeout=TIMEOUT_S * 10)
    secs = (now_us() - t0) / 1e6
    work_ms = n * sleep_ms if mode == "chain" else -(-n // workers) * sleep_ms
    print("RESULT system=celery mode=%s n=%d secs=%.3f load_ms=0 work_ms=%d "
          "overhead_ms_per_step=%.3f" % (mode, n, secs, work_ms,
                                         (secs * 1e3 - work_ms) / n), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--sleep-ms", type=int, default=0)
    ap.add_argument("mode", choices=["worker", "throughput", "rtt", "chain", "fanout"])
    ap.add_argument("n", type=int, nargs="?", default=0)
    args = ap.parse_args()
    app, noop = make_app(args.redis)
    if args.mode == "worker":
        app.worker_main(["worker", "--concurrency", str(args.concurrency),
                         "--pool", "prefork", "--loglevel", "WARNING",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
        return 0
    if args.n <= 0:
        ap.error("%s needs a job count" % args.mode)
    if args.mode in ("chain", "fanout"):
        dag(noop, args.mode, args.n, args.sleep_ms, args.concurrency)
    elif args.mode == "throughput":
        throughput(noop, args.n)
    else:
        rtt(noop, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
