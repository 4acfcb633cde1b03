#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the new slot is healthy, switch nginx to it and verify it (aistack.infra.bluegreen).

1. Probes --url (repeated: every instance of the slot) every --interval seconds until each answered
   200 --successes times in a row (any other answer resets the count); gives up after --timeout seconds.
2. Moves the staged upstream file (--staged, already rendered and tested by the role) over the
   live one (--live) with an atomic rename, runs `nginx -t`, and reloads nginx
   (`systemctl reload --service`).
3. Sends --verify-requests requests through nginx (--verify-url): each must answer 200 with JSON
   whose --verify-key is --verify-version. Right after the reload an old worker may still take a
   connection, so each request is retried (--verify-timeout seconds in all) until it does. Over
   HTTPS, a Host header (--verify-header) is also the TLS server name (SNI) and the name the
   certificate is checked against.

With --verify-only, only step 3 runs (the role's rollback checks that the old version answers).

If step 2 or 3 fails, the previous upstream file is put back and nginx reloaded onto it at once
(the role's rescue then stops the new slot). Doing all of it in one process on the host keeps the
controller's per-task latency out of the time from "healthy" to "switched" and out of the time a
bad switch stays live. Prints one JSON line (healthy_at, switched_at, verified_at: epoch seconds on
this host's clock; probes; verify answers); on failure prints one sentence and exits 1. Standard
library only: it runs with the host's python3.
"""
import argparse
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request


def fetch(url, timeout, headers=None, context=None):
    """Returns (status, body bytes, short description)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read(65536), "HTTP %d" % resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, b"", "HTTP %d" % exc.code
    except (urllib.error.URLError, OSError) as exc:
        return 0, b"", str(getattr(exc, "reason", exc))


class NamedContext(ssl.SSLContext):
    """A TLS client context that sends `server_name` (when set) as the SNI name, and checks the
    certificate against it, whatever host the URL names: https://localhost/ with a Host header
    reaches that name's site on an nginx that refuses handshakes for names it does not serve."""

    server_name = None

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)


def tls_context(insecure, server_name):
    context = NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        # Asked for (bluegreen_verify_validate_certs: false), for example a self-signed lab certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_default_certs()
    context.server_name = server_name
    return context


def wait_healthy(args):
    urls = args.url if isinstance(args.url, list) else [args.url]
    deadline = time.monotonic() + args.timeout
    streaks = dict.fromkeys(urls, 0)
    lasts = dict.fromkeys(urls, "no answer")
    probes = 0
    while True:
        probes += 1
        for url in urls:
            if streaks[url] >= args.successes:
                continue
            status, _body, lasts[url] = fetch(url, min(5.0, max(1.0, args.interval)))
            streaks[url] = streaks[url] + 1 if status == 200 else 0
        if all(streak >= args.successes for streak in streaks.values()):
            return probes, None
        if time.monotonic() + args.interval > deadline:
            late = [url for url in urls if streaks[url] < args.successes]
            return probes, ("; ".join("%s did not answer 200 %d times in a row within %ss (%d probes, %d in a row at the end, last: %s)"
                                      % (url, args.successes, args.timeout, probes, streaks[url], lasts[url]) for url in late))
        time.sleep(args.interval)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return proc.returncode, " ".join(proc.stdout.split())[-400:]


class Upstream:
    """The live upstream file, with the content it had before the switch for a way back."""

    def __init__(self, args):
        self.args = args
        with open(args.live, "rb") as fh:
            self.previous = fh.read()

    def switch(self):
        """Returns None on success, else a sentence; the live file is back as it was on failure."""
        os.replace(self.args.staged, self.args.live)
        rc, out = run([self.args.nginx, "-t", "-q"])
        if rc != 0:
            self.restore(reload=False)
            return "nginx -t failed with the new upstream (previous file restored): %s" % out
        rc, out = run(["systemctl", "reload", self.args.service])
        if rc != 0:
            self.restore()
            return "systemctl reload %s failed (previous file restored): %s" % (self.args.service, out)
        return None

    def restore(self, reload=True):
        tmp = self.args.live + ".restore"
        with open(tmp, "wb") as fh:
            fh.write(self.previous)
        os.replace(tmp, self.args.live)
        if reload:
            run(["systemctl", "reload", self.args.service])


def verify(args):
    """Returns (answers, None) or (answers, sentence)."""
    headers = dict(h.split(":", 1) for h in args.verify_header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    context = None
    if args.verify_url.startswith("https://"):
        # A Host header names the site: its name is also the TLS server name (SNI).
        host = next((v for k, v in headers.items() if k.lower() == "host"), "")
        server_name = host.rsplit(":", 1)[0] if host and not host.endswith("]") else host
        if args.verify_insecure or server_name:
            context = tls_context(args.verify_insecure, server_name or None)
    deadline = time.monotonic() + args.verify_timeout
    answers = []
    for i in range(args.verify_requests):
        while True:
            status, body, last = fetch(args.verify_url, 5.0, headers, context)
            got = None
            if status == 200:
                try:
                    doc = json.loads(body.decode("utf-8"))
                    got = str(doc.get(args.verify_key)) if isinstance(doc, dict) and args.verify_key in doc else None
                except ValueError:
                    last = "HTTP 200 without JSON"
                if got is not None and got != args.verify_version:
                    last = "HTTP 200 with %s %s" % (args.verify_key, got)
                elif got is None and status == 200:
                    last = "HTTP 200 without %r in a JSON object" % args.verify_key
            if got == args.verify_version:
                answers.append(got)
                break
            if time.monotonic() > deadline:
                return answers, ("request %d of %d through nginx to %s did not return %s %s within %ss (last: %s)"
                                 % (i + 1, args.verify_requests, args.verify_url, args.verify_key, args.verify_version,
                                    args.verify_timeout, last))
            time.sleep(0.2)
    return answers, None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--verify-only", action="store_true",
                   help="only step 3 (the role's rollback checks the old version answers): no --url, --staged, --live")
    p.add_argument("--url", action="append", default=[], help="health URL of the new slot (repeatable: one per instance)")
    p.add_argument("--successes", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--staged")
    p.add_argument("--live")
    p.add_argument("--service", default="nginx")
    p.add_argument("--nginx", default="nginx")
    p.add_argument("--verify-url", required=True, help="URL through nginx answering JSON with the version")
    p.add_argument("--verify-version", required=True)
    p.add_argument("--verify-key", default="version")
    p.add_argument("--verify-requests", type=int, default=5)
    p.add_argument("--verify-timeout", type=float, default=10.0)
    p.add_argument("--verify-header", action="append", default=[], help="NAME: VALUE (repeatable)")
    p.add_argument("--verify-insecure", action="store_true", help="do not validate the TLS certificate")
    args = p.parse_args()
    if args.verify_only:
        answers, error = verify(args)
        if error:
            print(error)
            return 1
        print(json.dumps({"verified_at": round(time.time(), 3), "verified": len(answers)}))
        return 0
    missing = [name for name, value in (("--url", args.url), ("--staged", args.staged), ("--live", args.live)) if not value]
    if missing:
        p.error("the following arguments are required without --verify-only: %s" % ", ".join(missing))
    probes, error = wait_healthy(args)
    if error:
        print(error)
        return 1
    healthy_at = time.time()
    upstream = Upstream(args)
    error = upstream.switch()
    if error:
        print(error)
        return 1
    switched_at = time.time()
    answers, error = verify(args)
    if error:
        upstream.restore()
        print("%s; nginx was switched back to the previous upstream" % error)
        return 1
    print(json.dumps({"healthy_at": round(healthy_at, 3), "switched_at": round(switched_at, 3),
                      "verified_at": round(time.time(), 3), "probes": probes, "verified": len(answers)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
