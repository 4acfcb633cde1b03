#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded HTTP load generator for blue-green switch tests (standard library only).

Sends GET requests to one loopback URL at a fixed rate (open loop: a request is started every
1/rate seconds whatever the previous ones do, like independent clients), each on a fresh
connection, and counts every answer: a 200 is a success, anything else (another status, a
refused or reset connection, a timeout) is a failure. For JSON answers with a "version" key the
version is counted too, so a switch can be followed request by request.

It always stops by itself: after --duration seconds, when --stop-file appears, or at the latest
after --max-duration seconds (a hard cap; an alarm kills it 30 s later if the loop ever hangs).
Only loopback addresses are accepted. The summary (JSON) goes to --out; --progress is rewritten
every second while it runs; --timeline adds one row per request for switch-time analysis.

  python3 loadgen.py --url http://127.0.0.1:8100/version --rate 200 --max-duration 600 \
      --stop-file /tmp/lg.stop --out /tmp/lg.json --progress /tmp/lg.progress
"""
import argparse
import asyncio
import ipaddress
import json
import os
import resource
import signal
import socket
import sys
import time
from urllib.parse import urlsplit


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/PATH (loopback only)")
    p.add_argument("--host-header", default=None, help="Host header (default: the URL's host)")
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: only stop file / max)")
    p.add_argument("--max-duration", type=float, default=300.0, help="hard cap in seconds (default 300, at most 3600)")
    p.add_argument("--stop-file", default=None, help="stop as soon as this file exists")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    p.add_argument("--max-inflight", type=int, default=2000,
                   help="requests in flight before new ones are not sent (counted as refused_overload)")
    p.add_argument("--out", required=True, help="write the JSON summary here")
    p.add_argument("--progress", default=None, help="rewrite a small JSON progress file every second")
    p.add_argument("--timeline", action="store_true", help="add one row per request to the summary")
    args = p.parse_args(argv)
    if not 0 < args.rate <= 5000:
        p.error("--rate must be in (0, 5000]")
    if not 0 < args.max_duration <= 3600:
        p.error("--max-duration must be in (0, 3600]")
    url = urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        p.error("--url must be http://HOST:PORT/PATH")
    try:
        addr = ipaddress.ip_address(socket.gethostbyname(url.hostname))
    except (OSError, ValueError) as exc:
        p.error("cannot resolve %s: %s" % (url.hostname, exc))
    if not addr.is_loopback:
        p.error("--url must point at a loopback address, not %s" % addr)
    args.host = str(addr)
    args.port = url.port or 80
    args.path = (url.path or "/") + ("?" + url.query if url.query else "")
    args.host_header = args.host_header or url.netloc
    if args.stop_file and os.path.exists(args.stop_file):
        os.unlink(args.stop_file)
    return args


class Stats:
    def __init__(self):
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.refused_overload = 0
        self.inflight = 0
        self.failures = {}
        self.versions = {}
        self.latencies = []
        self.examples = []
        self.rows = []
        self.max_lag = 0.0


def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP response: %r" % status_line[:60])  # also an empty answer
    status = int(parts[1])
    version = None
    if body:
        try:
            doc = json.loads(body.decode("utf-8"))
            if isinstance(doc, dict) and "version" in doc:
                version = str(doc["version"])
        except ValueError:
            pass
    return status, version


async def one_request(args, request, stats, t0):
    send = time.time()
    status, version, kind = 0, None, None
    try:
        async def exchange():
            reader, writer = await asyncio.open_connection(args.host, args.port)
            try:
                writer.write(request)
                await writer.drain()
                return await reader.read()  # until EOF: the request says Connection: close
            finally:
                writer.close()
        data = await asyncio.wait_for(exchange(), args.timeout)
        status, version = parse_response(data)
        if status != 200:
            kind = "http_%d" % status
    except asyncio.TimeoutError:
        kind = "timeout"
    except ValueError:
        kind = "bad_response"  # empty or not HTTP: the peer closed without answering
    except (OSError, asyncio.IncompleteReadError) as exc:
        kind = type(exc).__name__
    recv = time.time()
    stats.inflight -= 1
    if kind is None:
        stats.ok += 1
        stats.latencies.append(recv - send)
    else:
        stats.failed += 1
        stats.failures[kind] = stats.failures.get(kind, 0) + 1
        if len(stats.examples) < 20:
            stats.examples.append({"t": round(send - t0, 3), "kind": kind, "version": version})
    if version is not None:
        stats.versions[version] = stats.versions.get(version, 0) + 1
    if args.timeline:
        stats.rows.append((round(send, 4), round(recv, 4), status, version))


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)


def raise_fd_limit(inflight):
    """Every request in flight holds a socket: raise the soft limit of open files, cap in-flight."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = inflight + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return inflight if soft == resource.RLIM_INFINITY else max(1, min(inflight, soft - 64))


async def run(args):
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aistack-loadgen\r\nAccept: application/json\r\n"
               "Connection: close\r\n\r\n" % (args.path, args.host_header)).encode("latin-1")
    stats = Stats()
    loop = asyncio.get_running_loop()
    t0 = time.time()
    start = loop.time()
    limit = min(args.duration or args.max_duration, args.max_duration)
    tasks = set()
    reason = "max-duration" if not args.duration or args.duration >= args.max_duration else "duration"
    next_check = next_progress = 0.0
    i = 0
    while True:
        due = start + i / args.rate
        now = loop.time()
        if due - start >= limit:
            break
        if now >= next_check:
            next_check = now + 0.25
            if args.stop_file and os.path.exists(args.stop_file):
                reason = "stop-file"
                break
            if args.progress and now >= next_progress:
                next_progress = now + 1.0
                try:
                    write_json(args.progress, {"elapsed": round(now - start, 1), "sent": stats.sent, "ok": stats.ok,
                                               "failed": stats.failed, "inflight": stats.inflight,
                                               "versions": stats.versions})
                except OSError:
                    pass  # progress is informative only
        if due > now:
            await asyncio.sleep(due - now)
        stats.max_lag = max(stats.max_lag, loop.time() - due)
        i += 1
        if stats.inflight >= args.max_inflight:
            stats.refused_overload += 1
            continue
        stats.sent += 1
        stats.inflight += 1
        task = asyncio.ensure_future(one_request(args, request, stats, t0))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    elapsed = loop.time() - start
    if tasks:
        await asyncio.wait(list(tasks), timeout=args.timeout + 1)
    lat = stats.latencies
    summary = {
        "url": args.url, "target_rate": args.rate, "stop_reason": reason,
        "elapsed_s": round(elapsed, 2),
        "sent": stats.sent, "ok": stats.ok, "failed": stats.failed,
        "unanswered": stats.sent - stats.ok - stats.failed,
        "refused_overload": stats.refused_overload,
        "achieved_rate": round(stats.sent / elapsed, 1) if elapsed > 0 else 0.0,
        "max_schedule_lag_ms": round(stats.max_lag * 1000, 1),
        "failures": stats.failures, "failure_examples": stats.examples, "versions": stats.versions,
        "latency_ms": {k: (round(v * 1000, 2) if v is not None else None) for k, v in
                       (("p50", percentile(lat, 0.50)), ("p95", percentile(lat, 0.95)),
                        ("p99", percentile(lat, 0.99)), ("max", max(lat) if lat else None))},
        "started_at": round(t0, 3),
    }
    if args.timeline:
        summary["timeline"] = sorted(stats.rows)
    return summary


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.max_inflight = raise_fd_limit(args.max_inflight)
    signal.alarm(int(args.max_duration + args.timeout + 30))  # last resort if the loop hangs
    summary = asyncio.run(run(args))
    write_json(args.out, summary)
    if args.progress:
        write_json(args.progress, {"elapsed": summary["elapsed_s"], "sent": summary["sent"], "ok": summary["ok"],
                                   "failed": summary["failed"], "versions": summary["versions"], "done": True})
    if args.stop_file and os.path.exists(args.stop_file):
        os.unlink(args.stop_file)
    sys.stdout.write("sent=%(sent)d ok=%(ok)d failed=%(failed)d rate=%(achieved_rate)s/s stop=%(stop_reason)s\n" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
