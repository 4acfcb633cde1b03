#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue-green switch benchmark: N deploys under load, measured from the clients' side.

Runs against the molecule instance of the bluegreen scenario (see bench/README.md):

    PATH=$PWD/.venv/bin:$PATH molecule converge -s bluegreen
    .venv/bin/python bench/bluegreen_switch.py --switches 10 --rate 200

The load generator (molecule/bluegreen/files/loadgen.py) runs inside the instance and sends GET
/version through nginx at a fixed rate, each request on a fresh connection, recording every
answer. Each switch is a real `ansible-playbook playbooks/deploy_service.yml -e service_version=V`
run. Per switch it prints the time from "new slot healthy" (the role's last health probe,
recorded as healthy_at in the state file) to "all traffic on the new slot" (the first answer of
the new version after which no answer of another version arrived), and the failed requests.

Baselines from the same run: latency outside the switch windows against inside them; and, with
--baseline N (default 2), N in-place replacements of the serving container under the same load
(stop it, start the other version under the same name and port: what a deploy without blue-green
does), with their failed requests and outage. A final forced blue-green deploy then leaves the
instance as the role made it.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(REPO, "molecule", "bluegreen")
LOADGEN = os.path.join(SCENARIO, "files", "loadgen.py")
VERSIONS = ["1.1.0", "1.2.0", "2.0.0", "1.0.0"]
STATE_FILE = "/etc/aistack/bluegreen/demo-ai-service.json"
REMOTE_LOADGEN = "/usr/local/bin/aistack-loadgen"
TARGET_SWITCH_S = 3.0


def sh(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def dexec(instance, *argv):
    return sh(["docker", "exec", instance] + list(argv))


def find_inventory(explicit):
    if explicit:
        return explicit
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.bluegreen/inventory")),
                   key=os.path.getmtime)
    if not found:
        sys.exit("no molecule inventory for the bluegreen scenario: run `molecule converge -s bluegreen` "
                 "first, or give --inventory")
    return found[-1]


def read_state(instance):
    return json.loads(dexec(instance, "cat", STATE_FILE))


def deploy(version, inventory, *extra):
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env.update({"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
                "ANSIBLE_ROLES_PATH": os.path.join(REPO, "roles"),
                "ANSIBLE_NOCOLOR": "1", "PATH": bindir + os.pathsep + env.get("PATH", ""),
                # As over SSH (ansible.cfg) and in the molecule scenario: modules run without a file copy.
                "ANSIBLE_PIPELINING": "1"})
    # nice: here the controller shares the instance's machine; on a real site it is another one.
    argv = ["nice", "-n", "10", os.path.join(bindir, "ansible-playbook"), "playbooks/deploy_service.yml", "-i", inventory,
            "-i", os.path.join(SCENARIO, "inventory", "web_servers.yml"), "-e", "service_version=" + version] + list(extra)
    start = time.time()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    return proc.returncode, start, time.time(), proc.stdout[-3000:] + proc.stderr[-2000:]


def in_place(instance, state, version, nginx_url):
    """Replace the serving container in place (stop, remove, start the other version under the same
    name and port), as a deploy without blue-green does; returns (start, end) epoch seconds, end
    being when nginx first answered the new version."""
    slot, port = state["active_slot"], state["port"]
    name = "demo-ai-service-" + slot
    image = state["image"].rsplit(":", 1)[0] + ":" + version
    start = time.time()
    dexec(instance, "docker", "stop", "-t", "30", name)
    dexec(instance, "docker", "rm", name)
    dexec(instance, "docker", "run", "-d", "--name", name, "--network", "aistack-demo-ai-service",
          "-p", "127.0.0.1:%d:8000" % port, "-e", "BLUEGREEN_SLOT=" + slot, "--read-only", "--tmpfs", "/tmp",
          "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", image)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(dexec(instance, "curl", "-fsS", "-m", "2", nginx_url)).get("version") == version:
                return start, time.time()
        except (subprocess.CalledProcessError, ValueError):
            pass
        time.sleep(0.1)
    sys.exit("the in-place replacement by %s did not answer through nginx within 120 s" % image)


def analyse(rows, switch):
    """rows: (send, recv, status, version) sorted by recv, inside this switch's window."""
    new = switch["version"]
    new_recv = [r[1] for r in rows if r[3] == new]
    other_recv = [r[1] for r in rows if r[3] is not None and r[3] != new]
    if not new_recv:
        return None
    last_other = max([t for t in other_recv if t <= new_recv[-1]] or [0.0])
    all_new_at = min(t for t in new_recv if t > last_other)
    return {"first_new": min(new_recv) - switch["healthy_at"],
            "all_new": all_new_at - switch["healthy_at"],
            "mixed": max(0.0, last_other - min(new_recv)) if last_other else 0.0}


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--switches", type=int, default=10)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second through nginx")
    p.add_argument("--pause", type=float, default=3.0, help="quiet seconds between switches (the baseline)")
    p.add_argument("--instance", default="aistack-mol-bluegreen")
    p.add_argument("--inventory", default=None, help="molecule's inventory directory of the scenario")
    p.add_argument("--url", default="http://127.0.0.1:8100/version", help="nginx URL inside the instance")
    p.add_argument("--baseline", type=int, default=2,
                   help="in-place replacements of the serving container measured after the switches (0: none)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    inventory = find_inventory(args.inventory)
    try:
        state = read_state(args.instance)
    except subprocess.CalledProcessError as exc:
        sys.exit("cannot read %s in %s (%s): converge the scenario first" % (STATE_FILE, args.instance, exc.stderr.strip()))
    sh(["docker", "cp", LOADGEN, "%s:%s" % (args.instance, REMOTE_LOADGEN)])
    for f in ("/tmp/bench.stop", "/tmp/bench.json", "/tmp/bench.progress"):
        dexec(args.instance, "rm", "-f", f)
    max_duration = min(3600, 180 + (args.switches + args.baseline) * 90)
    subprocess.run(["docker", "exec", "-d", args.instance, "python3", REMOTE_LOADGEN, "--url", args.url,
                    "--rate", str(args.rate), "--max-duration", str(max_duration), "--stop-file", "/tmp/bench.stop",
                    "--out", "/tmp/bench.json", "--progress", "/tmp/bench.progress", "--timeline"], check=True)
    for _ in range(60):
        try:
            if json.loads(dexec(args.instance, "cat", "/tmp/bench.progress")).get("sent", 0) >= args.rate:
                break
        except (subprocess.CalledProcessError, ValueError):
            pass
        time.sleep(0.5)
    else:
        sys.exit("the load generator did not start (see docker exec %s cat /tmp/bench.progress)" % args.instance)

    current = state["version"]
    start_index = (VERSIONS.index(current) + 1) if current in VERSIONS else 0
    switches = []
    baselines = []
    restore = None
    try:
        time.sleep(args.pause)
        for i in range(args.switches):
            version = VERSIONS[(start_index + i) % len(VERSIONS)]
            rc, t_start, t_end, tail = deploy(version, inventory)
            st = read_state(args.instance)
            switches.append({"version": version, "rc": rc, "start": t_start, "end": t_end,
                             "healthy_at": float(st.get("healthy_at", 0)) if st.get("version") == version else None,
                             "slot": st.get("active_slot")})
            print("switch %2d: %-6s -> slot %-5s rc=%d in %.1f s" % (i + 1, version, st.get("active_slot"), rc, t_end - t_start),
                  flush=True)
            if rc != 0:
                print(tail, file=sys.stderr)
                break
            time.sleep(args.pause)
        if args.baseline and all(sw["rc"] == 0 for sw in switches):
            st = read_state(args.instance)
            versions = [v for v in VERSIONS if v != st["version"]]
            for i in range(args.baseline):
                version = versions[i % len(versions)]
                t_start, t_end = in_place(args.instance, st, version, args.url)
                baselines.append({"version": version, "start": t_start, "answered": t_end})
                print("in-place %d: %-6s -> slot %-5s (stop, remove, start) answered through nginx after %.1f s"
                      % (i + 1, version, st["active_slot"], t_end - t_start), flush=True)
                time.sleep(args.pause)
            # Back to a container the role made (its definition label), with a normal blue-green deploy.
            rc, t_start, t_end, tail = deploy(st["version"], inventory, "-e", "bluegreen_force_deploy=true")
            restore = {"version": st["version"], "rc": rc, "start": t_start, "end": t_end}
            print("restore : %-6s blue-green (forced) rc=%d in %.1f s" % (st["version"], rc, t_end - t_start), flush=True)
            if rc != 0:
                print(tail, file=sys.stderr)
            time.sleep(args.pause)
    finally:
        dexec(args.instance, "touch", "/tmp/bench.stop")
        for _ in range(60):
            try:
                if json.loads(dexec(args.instance, "cat", "/tmp/bench.progress")).get("done"):
                    break
            except (subprocess.CalledProcessError, ValueError):
                pass
            time.sleep(0.5)
    load = json.loads(dexec(args.instance, "cat", "/tmp/bench.json"))
    rows = sorted((tuple(r) for r in load["timeline"]), key=lambda r: r[1])

    results = []
    for i, sw in enumerate(switches):
        if sw["healthy_at"] is None:
            continue
        end = (switches[i + 1]["start"] if i + 1 < len(switches)
               else baselines[0]["start"] if baselines else rows[-1][1] + 1)
        window = [r for r in rows if sw["start"] <= r[1] < end]
        res = analyse(window, sw)
        if res:
            res["failed"] = sum(1 for r in window if r[2] != 200)
            res["version"] = sw["version"]
            results.append(res)
    # In-place baseline: failed requests and outage (first failed request sent to last one answered).
    for i, b in enumerate(baselines):
        end = baselines[i + 1]["start"] if i + 1 < len(baselines) else (restore["start"] if restore else rows[-1][1] + 1)
        window = [r for r in rows if b["start"] <= r[0] < end]
        failed = [r for r in window if r[2] != 200]
        b["sent"] = len(window)
        b["failed"] = len(failed)
        b["outage_s"] = (max(r[1] for r in failed) - min(r[0] for r in failed)) if failed else 0.0
    bluegreen_rows = [r for r in rows if not baselines or r[0] < baselines[0]["start"]]
    bluegreen_failed = sum(1 for r in bluegreen_rows if r[2] != 200)
    restore_failed = (sum(1 for r in rows if r[0] >= restore["start"] and r[2] != 200) if restore else 0)
    # Latency baseline: answers outside [healthy_at - 1 s, healthy_at + 10 s] of every switch (the
    # reload, the drain and the old slot's stop) against those inside, blue-green part of the run only.
    busy = [(sw["healthy_at"] - 1, sw["healthy_at"] + 10) for sw in switches if sw["healthy_at"]]
    in_switch = [r[1] - r[0] for r in bluegreen_rows if r[2] == 200 and any(a <= r[0] <= b for a, b in busy)]
    quiet = [r[1] - r[0] for r in bluegreen_rows if r[2] == 200 and not any(a <= r[0] <= b for a, b in busy)]

    print()
    print("bluegreen switch benchmark: %d switches under %.0f req/s through nginx (%s)" % (len(switches), args.rate, args.url))
    print("  requests sent   %d in all (achieved %.1f/s over %.1f s, max schedule lag %.0f ms); %d during the blue-green switches"
          % (load["sent"], load["achieved_rate"], load["elapsed_s"], load["max_schedule_lag_ms"], len(bluegreen_rows)))
    print("  failed requests during the blue-green switches: %d (all failures of the run: %s)"
          % (bluegreen_failed, load["failures"] or "none"))
    print("  %-4s %-8s %12s %14s %12s %7s" % ("#", "version", "first new s", "all traffic s", "mixed s", "failed"))
    for i, r in enumerate(results):
        print("  %-4d %-8s %12.2f %14.2f %12.2f %7d" % (i + 1, r["version"], r["first_new"], r["all_new"], r["mixed"], r["failed"]))
    all_new = [r["all_new"] for r in results]
    if all_new:
        print("  healthy -> all traffic on the new slot: min %.2f s, median %.2f s, max %.2f s (target < %.0f s)"
              % (min(all_new), statistics.median(all_new), max(all_new), TARGET_SWITCH_S))
    if quiet and in_switch:
        print("  latency p50/p99: quiet %.1f/%.1f ms, during switches %.1f/%.1f ms (p99 ratio %.2fx the baseline)"
              % (pct(quiet, 0.5) * 1000, pct(quiet, 0.99) * 1000, pct(in_switch, 0.5) * 1000, pct(in_switch, 0.99) * 1000,
                 pct(in_switch, 0.99) / pct(quiet, 0.99)))
    deploy_s = [sw["end"] - sw["start"] for sw in switches]
    if deploy_s:
        print("  whole deploy (ansible-playbook) per switch: median %.1f s" % statistics.median(deploy_s))
    for i, b in enumerate(baselines):
        print("  baseline in-place %d (%s): %d requests, %d failed, outage %.2f s, new version through nginx after %.1f s"
              % (i + 1, b["version"], b["sent"], b["failed"], b["outage_s"], b["answered"] - b["start"]))
    if restore:
        print("  restore (forced blue-green deploy of %s): rc=%d, %d failed requests"
              % (restore["version"], restore["rc"], restore_failed))
    ok = (bluegreen_failed == 0 and restore_failed == 0 and len(results) == args.switches
          and all(sw["rc"] == 0 for sw in switches) and all(x < TARGET_SWITCH_S for x in all_new)
          and (restore is None or restore["rc"] == 0))
    print("  target (0 failed, every switch < %.0f s): %s" % (TARGET_SWITCH_S, "met" if ok else "NOT met"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"load": {k: v for k, v in load.items() if k != "timeline"}, "switches": switches,
                       "results": results, "baselines": baselines, "restore": restore}, fh, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
