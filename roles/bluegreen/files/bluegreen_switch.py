#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the new slot is healthy, then switch nginx to it (aistack.infra.bluegreen).

1. Probes --url every --interval seconds until it answered 200 --successes times in a row (any
   other answer resets the count); gives up after --timeout seconds.
2. Moves the staged upstream file (--staged, already rendered and tested by the role) over the
   live one (--live) with an atomic rename, runs `nginx -t`, and reloads nginx
   (`systemctl reload --service`). If the test or the reload fails, the previous file is put
   back (and nginx reloaded again when the reload had been attempted).

Doing both in one process makes the time from "healthy" to "switched" independent of the
controller's per-task latency. Prints one JSON line: healthy_at and switched_at (epoch seconds,
this host's clock) and the number of probes; exits 1 with a sentence on failure. Standard
library only: it runs with the host's python3.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request


def probe(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, "HTTP %d" % resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, "HTTP %d" % exc.code
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def wait_healthy(args):
    deadline = time.monotonic() + args.timeout
    streak = probes = 0
    while True:
        probes += 1
        status, last = probe(args.url, min(5.0, max(1.0, args.interval)))
        streak = streak + 1 if status == 200 else 0
        if streak >= args.successes:
            return probes, None
        if time.monotonic() + args.interval > deadline:
            return probes, ("%s did not answer 200 %d times in a row within %ss (%d probes, %d in a row at the end, last: %s)"
                            % (args.url, args.successes, args.timeout, probes, streak, last))
        time.sleep(args.interval)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return proc.returncode, " ".join(proc.stdout.split())[-400:]


def switch(args):
    """Returns None on success, else a sentence; the live file is back as it was on failure."""
    with open(args.live, "rb") as fh:
        previous = fh.read()
    os.replace(args.staged, args.live)

    def restore():
        tmp = args.live + ".restore"
        with open(tmp, "wb") as fh:
            fh.write(previous)
        os.replace(tmp, args.live)

    rc, out = run([args.nginx, "-t", "-q"])
    if rc != 0:
        restore()
        return "nginx -t failed with the new upstream (previous file restored): %s" % out
    rc, out = run(["systemctl", "reload", args.service])
    if rc != 0:
        restore()
        run(["systemctl", "reload", args.service])
        return "systemctl reload %s failed (previous file restored): %s" % (args.service, out)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--successes", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--staged", required=True)
    p.add_argument("--live", required=True)
    p.add_argument("--service", default="nginx")
    p.add_argument("--nginx", default="nginx")
    args = p.parse_args()
    probes, error = wait_healthy(args)
    if error:
        print(error)
        return 1
    healthy_at = time.time()
    error = switch(args)
    if error:
        print(error)
        return 1
    print(json.dumps({"healthy_at": round(healthy_at, 3), "switched_at": round(time.time(), 3), "probes": probes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
