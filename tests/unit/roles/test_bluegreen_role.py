# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bluegreen role without a host: invalid variables fail in preflight naming the variable; the
deploy decision (which slot, which version, why) for every recorded state; the upstream file as
rendered; and the host-side switch script (health streak, atomic switch, verification through
nginx, way back) against a local HTTP server with stand-ins for `nginx -t` and `systemctl reload`.

The Ansible parts are real ansible-playbook runs against localhost: the preflight probe runs in
check mode limited to the `bluegreen_preflight` tag (argument validation and assertions only), the
decision and rendering tests evaluate the role's own defaults, vars and templates.
"""
import base64
import http.server
import json
import os
import re
import socketserver
import ssl
import subprocess
import sys
import threading

import pytest
import yaml
from lib.ansible_run import render_role_templates, role_preflight_probe, run_playbook

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "bluegreen")
SWITCH = os.path.join(ROLE, "files", "bluegreen_switch.py")
NGINX_MISSING = "nginx is not installed"


def _emitted(proc, var):
    out = json.loads(proc.stdout)
    tasks = out["plays"][0]["tasks"]
    emitted = [t for t in tasks if t["task"]["name"] == "emit"]
    assert emitted, "the play did not finish (rc=%s): %s %s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return emitted[0]["hosts"]["localhost"][var]


# --- Preflight ---------------------------------------------------------------------------------

# case id -> (variables, substrings the failure message must contain); None = valid (then only the
# check that nginx is installed may fail, on a machine without nginx)
CASES = {
    "valid": ({}, None),
    "valid-version": ({"bluegreen_version": "2.0.0-rc_1"}, None),
    "service-name": ({"bluegreen_service_name": "Demo AI"}, ["bluegreen_service_name must be lower-case", "got 'Demo AI'"]),
    "version-tag": ({"bluegreen_version": "1.0 beta"}, ["must be image tags", "got '1.0 beta'"]),
    "version-leading-dot": ({"bluegreen_version": ".hidden"}, ["must be image tags"]),
    "ports-missing-green": ({"bluegreen_ports": {"blue": 8101}}, ["bluegreen_ports needs exactly the keys blue and green"]),
    "ports-same": ({"bluegreen_ports": {"blue": 8101, "green": 8101}}, ["two different ports"]),
    "ports-range": ({"bluegreen_ports": {"blue": 8101, "green": 70000}}, ["bluegreen_ports needs exactly"]),
    "container-port": ({"bluegreen_container_port": 0}, ["bluegreen_container_port must be a port"]),
    # Several instances per slot (the seed's x4): their ports must stay apart and within range.
    "instances-4": ({"bluegreen_instances": 4}, None),
    "instances-zero": ({"bluegreen_instances": 0}, ["bluegreen_instances must be 1-32 (got 0)"]),
    "instances-ports-meet": ({"bluegreen_instances": 2, "bluegreen_instance_port_step": 1},
                             ["never meet", "8101, 8102, 8102, 8103"]),
    "instances-beyond-65535": ({"bluegreen_instances": 2, "bluegreen_ports": {"blue": 65530, "green": 65531}},
                               ["stay within 65535", "65540"]),
    "health-timeout-short": ({"bluegreen_health_timeout": 2, "bluegreen_health_interval": 1, "bluegreen_health_successes": 3},
                             ["bluegreen_health_timeout at least interval x successes", "got 2"]),
    "health-path": ({"bluegreen_health_path": "health"}, ["bluegreen_health_path starting with '/'"]),
    "verify-url": ({"bluegreen_verify_url": "ftp://127.0.0.1/version"}, ["bluegreen_verify_url an http(s) URL"]),
    "verify-requests": ({"bluegreen_verify_requests": 0}, ["bluegreen_verify_requests >= 1"]),
    "verify-timeout": ({"bluegreen_verify_timeout": 0}, ["bluegreen_verify_timeout > 0"]),
    "drain": ({"bluegreen_drain_seconds": -1}, ["bluegreen_drain_seconds >= 0"]),
    "restart-policy": ({"bluegreen_restart_policy": "sometimes"}, ["bluegreen_restart_policy", "unless-stopped"]),
    "ports-type": ({"bluegreen_ports": "8101,8102"}, ["bluegreen_ports", "dict"]),
    "unknown-type-successes": ({"bluegreen_health_successes": "many"}, ["bluegreen_health_successes", "int"]),
    # GPU pins (the seed's API server on GPU 3), checked with the gpu role's rules: against this
    # machine's real PCI bus (no NVIDIA device), or gpu_device_count standing for the seed's 4 GPUs.
    "gpu-3-of-4": ({"bluegreen_gpus": [3], "bluegreen_memory": "1g", "bluegreen_cpus": 1, "gpu_device_count": 4}, None),
    "gpu-all-of-4": ({"bluegreen_gpus": "all", "gpu_device_count": 4}, None),
    "gpu-on-this-gpu-less-host": ({"bluegreen_gpus": [3]}, [
        "bluegreen_gpus, bluegreen_memory or bluegreen_cpus do not fit",
        "bluegreen.demo-ai-service.gpus: GPU 3 beyond the host, which has no GPU"]),
    "gpu-beyond-4": ({"bluegreen_gpus": "3,4", "gpu_device_count": 4},
                     ["bluegreen.demo-ai-service.gpus: GPU 4 beyond the host, which has 4 GPUs (indices 0-3)"]),
    "gpu-twice": ({"bluegreen_gpus": [3, 3], "gpu_device_count": 4}, ["bluegreen.demo-ai-service.gpus: GPU 3 is listed twice"]),
    "gpu-not-an-index": ({"bluegreen_gpus": ["three"], "gpu_device_count": 4}, ["bluegreen.demo-ai-service.gpus: 'three' is not a GPU index"]),
    # The probe play gathers no facts: the host's figures are given as the facts the check reads.
    "limits-above-host": ({"bluegreen_memory": "64g", "bluegreen_cpus": 48,
                           "ansible_facts": {"memtotal_mb": 32768, "processor_vcpus": 16}},
                          ["bluegreen.demo-ai-service.memory 64g (65536 MB) is above the host memory (32768 MB)",
                           "bluegreen.demo-ai-service.cpus 48 is above the host's 16 CPUs"]),
    "bad-memory": ({"bluegreen_memory": "lots"}, ["bluegreen.demo-ai-service.memory: 'lots' is not a memory size"]),
}


@pytest.fixture(scope="module")
def probe():
    results, ran, _stdout = role_preflight_probe("bluegreen", CASES, "bluegreen_preflight")
    return results, ran


@pytest.mark.parametrize("case", sorted(CASES))
def test_preflight_fails_naming_the_variable(probe, case):
    results, _ran = probe
    _variables, expect = CASES[case]
    msg = results[case]
    if expect is None:
        if os.path.exists("/usr/sbin/nginx"):
            assert msg == "PASSED"
        else:
            assert msg == "PASSED" or NGINX_MISSING in msg, msg
    else:
        assert msg != "PASSED", "the role accepted case %s" % case
        assert NGINX_MISSING not in msg, "case %s got past the variable checks: %s" % (case, msg)
        for needle in expect:
            assert needle in msg, "%r not in %r" % (needle, msg)


def test_probe_ran_only_validation_and_preflight(probe):
    """Nothing past preflight ran, so a failing case cannot have changed anything."""
    _results, ran = probe
    role_tasks = {n.split(" : ", 1)[1] for n in ran if n.startswith("aistack.infra.bluegreen : ")}
    assert role_tasks
    role_tasks = {n for n in role_tasks if not n.startswith("Validating arguments against arg spec")}
    allowed = {"Check the service name, version and image", "Check the slots' ports", "Check the health and verify settings",
               "Check the instances per slot", "Count the host's GPUs for the slots' pin", "Check that the slots' GPU pin and limits fit this host",
               "Look for nginx", "Check that nginx is installed"}
    assert role_tasks <= allowed, sorted(role_tasks - allowed)


# --- The deploy decision -----------------------------------------------------------------------

def _state(**fields):
    doc = {"service": "demo-ai-service", "active_slot": "blue", "version": "1.0.0", "port": 8101}
    doc.update(fields)
    return {"content": base64.b64encode(json.dumps(doc).encode()).decode()}


def _container(slot, running=True, definition="{{ _bluegreen_definition_hash.%s }}", health=None):
    state = {"Running": running, "Status": "running" if running else "exited"}
    if health:
        state["Health"] = {"Status": health}
    return {"exists": True, "container": {
        "State": state,
        "Config": {"Labels": {"io.aistack.bluegreen.definition": definition % slot if "%s" in definition else definition}}}}


def _others(*states):
    """__bluegreen_active_others for instances 2.. of slot blue: each a _container() result or NO_CONTAINER."""
    return {"results": [dict(state, item={"name": "demo-ai-service-blue-%d" % (i + 2)})
                        for i, state in enumerate(states)]}


NO_STATE = {"failed": True, "msg": "file not found: /etc/aistack/bluegreen/demo-ai-service.json"}
NO_CONTAINER = {"exists": False, "container": None}

# case id -> (variables, expected plan fields)
PLANS = {
    "fresh-host": ({"__bluegreen_state_file": NO_STATE, "__bluegreen_active_info": {"skipped": True}},
                   {"deploy": True, "to_slot": "blue", "from_slot": "", "version": "1.0.0",
                    "reasons": ["nothing deployed yet"]}),
    "fresh-host-version-given": ({"__bluegreen_state_file": NO_STATE, "__bluegreen_active_info": {"skipped": True},
                                  "bluegreen_version": "1.1.0"},
                                 {"deploy": True, "to_slot": "blue", "version": "1.1.0",
                                  "image": "reg.example:5000/aistack/demo-ai-service:1.1.0"}),
    "same-version": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                      "bluegreen_version": "1.0.0"},
                     {"deploy": False, "from_slot": "blue", "to_slot": "green", "reasons": []}),
    "empty-version-keeps-recorded": ({"__bluegreen_state_file": _state(active_slot="green", version="2.0.0"),
                                      "__bluegreen_active_info": _container("green")},
                                     {"deploy": False, "version": "2.0.0", "from_slot": "green", "to_slot": "blue"}),
    "new-version": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                     "bluegreen_version": "1.1.0"},
                    {"deploy": True, "from_slot": "blue", "to_slot": "green", "from_port": 8101, "to_port": 8102,
                     "from_version": "1.0.0", "version": "1.1.0", "reasons": ["version 1.0.0 -> 1.1.0"]}),
    "new-version-from-green": ({"__bluegreen_state_file": _state(active_slot="green", version="1.1.0"),
                                "__bluegreen_active_info": _container("green"), "bluegreen_version": "1.2.0"},
                               {"deploy": True, "from_slot": "green", "to_slot": "blue", "to_port": 8101}),
    "active-stopped": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue", running=False),
                        "bluegreen_version": "1.0.0"},
                       {"deploy": True, "to_slot": "green",
                        "reasons": ["the active slot's container is missing or stopped"]}),
    "active-missing": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": NO_CONTAINER},
                       {"deploy": True, "to_slot": "green",
                        "reasons": ["the active slot's container is missing or stopped"]}),
    "active-unhealthy": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue", health="unhealthy")},
                         {"deploy": True, "to_slot": "green",
                          "reasons": ["the active slot's container is unhealthy (demo-ai-service-blue)"]}),
    "active-starting-or-healthy": ({"__bluegreen_state_file": _state(),
                                    "__bluegreen_active_info": _container("blue", health="starting"),
                                    "__bluegreen_active_others": _others(_container("blue", health="healthy"))},
                                   {"deploy": False, "reasons": []}),
    "other-instance-unhealthy": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                                  "__bluegreen_active_others": _others(_container("blue"), _container("blue", health="unhealthy"))},
                                 {"deploy": True, "reasons": [
                                     "the active slot's container is unhealthy (demo-ai-service-blue-3)"]}),
    "other-instance-missing": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                                "__bluegreen_active_others": _others(NO_CONTAINER)},
                               {"deploy": True, "reasons": ["the active slot's container is missing or stopped"]}),
    "definition-changed": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                            "bluegreen_env": {"LOG_LEVEL": "debug"}, "__bluegreen_label_override": True},
                           {"deploy": True, "to_slot": "green", "reasons": ["the container definition changed"]}),
    "forced": ({"__bluegreen_state_file": _state(), "__bluegreen_active_info": _container("blue"),
                "bluegreen_force_deploy": True},
               {"deploy": True, "to_slot": "green", "reasons": ["forced (bluegreen_force_deploy)"]}),
}


def _plan_play():
    tasks = []
    for case, (variables, _expect) in PLANS.items():
        variables = dict(variables)
        if variables.pop("__bluegreen_label_override", False):
            # The running container was made from the defaults: its label is the hash without LOG_LEVEL.
            variables["__bluegreen_active_info"] = _container("blue", definition="stale-hash-from-the-defaults")
        variables.setdefault("aistack_image_registry", "reg.example:5000")
        tasks.append({"name": case, "vars": variables, "ansible.builtin.set_fact": {
            "plans": "{{ plans | combine({'%s': {'deploy': _bluegreen_deploy_reasons | length > 0,"
                     " 'reasons': _bluegreen_deploy_reasons, 'version': _bluegreen_target_version,"
                     " 'image': _bluegreen_image, 'from_slot': _bluegreen_active_slot, 'from_version': _bluegreen_active_version,"
                     " 'from_port': bluegreen_ports[_bluegreen_active_slot] | default(bluegreen_ports.blue) | int,"
                     " 'to_slot': _bluegreen_idle_slot, 'to_port': bluegreen_ports[_bluegreen_idle_slot] | int}}) }}" % case}})
    tasks.append({"name": "emit", "ansible.builtin.debug": {"var": "plans"}})
    return [{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
        "vars": {"plans": {}},
        "tasks": tasks,
    }]


@pytest.fixture(scope="module")
def plans():
    return _emitted(run_playbook(_plan_play()), "plans")


@pytest.mark.parametrize("case", sorted(PLANS))
def test_deploy_decision(plans, case):
    _variables, expect = PLANS[case]
    plan = plans[case]
    for key, value in expect.items():
        assert plan[key] == value, "%s: %s is %r, expected %r (plan %s)" % (case, key, plan[key], value, plan)


def _hashes(extra):
    play = [{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
        # Task vars: play vars would rank below the vars_files.
        "tasks": [{"name": "emit", "ansible.builtin.debug": {"var": "_bluegreen_definition_hash"},
                   "vars": dict({"bluegreen_version": "1.0.0", "__bluegreen_state_file": NO_STATE}, **extra)}],
    }]
    return _emitted(run_playbook(play), "_bluegreen_definition_hash")


def test_definition_hash_covers_the_definition_but_not_secret_values():
    base = _hashes({})
    assert base["blue"] != base["green"]  # slot name and port are part of each slot's definition
    assert _hashes({"bluegreen_env": {"LOG_LEVEL": "debug"}}) != base
    assert _hashes({"bluegreen_memory": "512m"}) != base
    secret_a = _hashes({"bluegreen_secret_env": {"DATABASE_URL": "postgresql://app:one@db/rag"}})
    secret_b = _hashes({"bluegreen_secret_env": {"DATABASE_URL": "postgresql://app:two@db/rag"}})
    assert secret_a != base  # the name is hashed
    assert secret_a == secret_b  # the value is not
    assert _hashes({"bluegreen_gpus": [3]}) != base
    assert _hashes({"bluegreen_cpus": 4}) != base
    # One instance per slot: the instance settings stay out (definitions made before them keep their hash).
    assert _hashes({"bluegreen_instances": 1, "bluegreen_instance_port_step": 99}) == base
    assert _hashes({"bluegreen_instances": 4}) != base


def _emit(var, extra):
    play = [{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
        "tasks": [{"name": "emit", "ansible.builtin.debug": {"var": var},
                   "vars": dict({"bluegreen_version": "1.0.0", "__bluegreen_state_file": NO_STATE}, **extra)}],
    }]
    return _emitted(run_playbook(play), var)


def test_gpu_pin_renders_device_requests_and_leaves_unpinned_definitions_alone():
    """The slots' GPUs become docker_container's device_requests (rendered only: no GPU here);
    without a pin the definition has no gpus/cpus keys, so hosts deployed before the option existed
    keep their definition hash (no redeploy)."""
    gpu = [{"driver": "nvidia", "device_ids": ["3"], "capabilities": [["gpu"]]}]
    assert _emit("_bluegreen_device_requests", {"bluegreen_gpus": [3]}) == gpu
    assert _emit("_bluegreen_device_requests", {"bluegreen_gpus": "3"}) == gpu
    assert _emit("_bluegreen_device_requests", {"bluegreen_gpus": "all"}) == [
        {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    assert _emit("_bluegreen_device_requests", {}) == []
    definition = _emit("_bluegreen_definition", {})
    assert "gpus" not in definition and "cpus" not in definition
    pinned = _emit("_bluegreen_definition", {"bluegreen_gpus": [3], "bluegreen_cpus": 4})
    assert pinned["gpus"] == "[3]" and pinned["cpus"] == 4.0
    # The slot container gets them (and nothing when unset: omit).
    with open(os.path.join(ROLE, "tasks", "deploy.yml")) as handle:
        deploy = yaml.safe_load(handle)
    start = [t for t in deploy[0]["block"] if t["name"] == "Start the new version in the idle slot"][0]
    args = start["community.docker.docker_container"]
    assert args["device_requests"] == "{{ _bluegreen_device_requests if bluegreen_gpus | length > 0 else omit }}"
    assert args["cpus"] == "{{ bluegreen_cpus | float if bluegreen_cpus | float > 0 else omit }}"


# --- Rendering ---------------------------------------------------------------------------------

def _render(variables):
    return render_role_templates("bluegreen", ("upstream.conf", "site.conf"), variables)


def test_upstream_and_site_render():
    files = _render({"__bluegreen_upstream": {"slot": "green", "port": 8102, "version": "1.1.0"}})
    upstream = files["upstream.conf"]
    assert "Active slot: green (version 1.1.0)" in upstream
    assert re.search(r"upstream demo-ai-service \{\s+server 127\.0\.0\.1:8102;\s+keepalive 16;\s+\}", upstream), upstream
    site = files["site.conf"]
    assert "listen 127.0.0.1:8100;" in site
    assert "proxy_pass http://demo-ai-service;" in site
    assert 'proxy_set_header Connection "";' in site


def test_upstream_lists_every_instance_of_the_slot():
    files = _render({"__bluegreen_upstream": {"slot": "green", "port": 8102, "version": "1.1.0"}, "bluegreen_instances": 4})
    servers = re.findall(r"server (\S+);", files["upstream.conf"])
    assert servers == ["127.0.0.1:8102", "127.0.0.1:8112", "127.0.0.1:8122", "127.0.0.1:8132"]


def test_slot_instances_names_and_ports():
    one = _emit("_bluegreen_slot_instances", {})
    assert one == {"blue": [{"name": "demo-ai-service-blue", "port": 8101}],
                   "green": [{"name": "demo-ai-service-green", "port": 8102}]}
    four = _emit("_bluegreen_slot_instances", {"bluegreen_instances": 4})
    assert [i["name"] for i in four["blue"]] == ["demo-ai-service-blue", "demo-ai-service-blue-2",
                                                 "demo-ai-service-blue-3", "demo-ai-service-blue-4"]
    assert [i["port"] for i in four["green"]] == [8102, 8112, 8122, 8132]
    # The names the old slot is stopped by: every instance the state file recorded (3), though the
    # slot now runs 1.
    names = _emit("_bluegreen_slot_names", {"__bluegreen_state_file": _state(instances=3)})
    assert names["green"] == ["demo-ai-service-green", "demo-ai-service-green-2", "demo-ai-service-green-3"]


def _switch_args(extra):
    """The switch step's argv, templated from tasks/deploy.yml's own expression."""
    with open(os.path.join(ROLE, "tasks", "deploy.yml")) as handle:
        deploy = yaml.safe_load(handle)
    step = [t for t in deploy[0]["block"] if t["name"].startswith("Wait until the new slot passes")][0]
    plan = {"to_slot": "green", "to_port": 8102, "version": "1.1.0"}
    return _emit("_bluegreen_switch_args", dict({"__bluegreen_plan": plan,
                                                 "_bluegreen_switch_args": step["vars"]["_bluegreen_switch_args"]}, **extra))


def test_switch_probes_every_instance():
    one = _switch_args({})
    assert [a for a in one if a.startswith("--url")] == ["--url=http://127.0.0.1:8102/health"]
    four = _switch_args({"bluegreen_instances": 4, "bluegreen_health_path": "/healthz"})
    assert [a for a in four if a.startswith("--url")] == [
        "--url=http://127.0.0.1:%d/healthz" % port for port in (8102, 8112, 8122, 8132)]
    assert four[four.index("--verify-version") + 1] == "1.1.0"


def test_upstream_without_keepalive_and_fresh_host():
    files = _render({"__bluegreen_upstream": {"slot": "blue", "port": 8101, "version": ""},
                     "bluegreen_nginx_upstream_keepalive": 0, "bluegreen_service_name": "rag-api"})
    upstream = files["upstream.conf"]
    assert "nothing deployed yet" in upstream
    assert "upstream rag-api {" in upstream
    assert "keepalive" not in upstream.split("upstream rag-api", 1)[1]


# --- Documentation ----------------------------------------------------------------------------

def test_readme_lists_every_variable():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as fh:
        defaults = yaml.safe_load(fh)
    with open(os.path.join(ROLE, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    missing = [name for name in defaults if "| `%s` |" % name not in readme]
    assert not missing, "README.md's variable table lacks %s" % missing


# --- The switch script -------------------------------------------------------------------------

class _Service:
    """A local HTTP server standing in for the new slot (/health) and for nginx (/version).

    /version answers the version named in the live upstream file (as nginx would after a reload),
    except for the first `stale` requests after each reload, answered with the old version (an old
    nginx worker still taking a connection)."""

    def __init__(self, tmp, health=(200,), stale=0, version_key="version"):
        self.health = list(health)
        self.stale = stale
        self.version_key = version_key
        self.live = os.path.join(tmp, "svc.conf")
        self.reloads = os.path.join(tmp, "reloads.log")
        self.health_hits = 0
        self.version_hits = 0
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/health":
                    status = service.health[min(service.health_hits, len(service.health) - 1)]
                    service.health_hits += 1
                    body = b"{}"
                else:
                    service.version_hits += 1
                    with open(service.live, encoding="utf-8") as fh:
                        current = re.search(r"version=(\S+)", fh.read()).group(1)
                    reloads = open(service.reloads).read().count("reload") if os.path.exists(service.reloads) else 0
                    answered = "old" if reloads and service.version_hits <= service.stale else current
                    status, body = 200, json.dumps({service.version_key: answered}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def sandbox(tmp_path):
    """Stand-ins for nginx and systemctl: they log their calls; `nginx -t` fails when told to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "reloads.log"
    (bindir / "systemctl").write_text("#!/bin/sh\necho \"$*\" >> %s\n" % log)
    (bindir / "nginx").write_text("#!/bin/sh\n[ -e %s ] && { echo 'emerg: bad upstream' ; exit 1; }\nexit 0\n"
                                  % (tmp_path / "nginx-fails"))
    for f in ("systemctl", "nginx"):
        os.chmod(bindir / f, 0o755)
    (tmp_path / "svc.conf").write_text("version=1.0.0\n")
    (tmp_path / "svc.conf.next").write_text("version=1.1.0\n")
    return tmp_path


def _switch(sandbox, service, *extra, verify_version="1.1.0"):
    env = dict(os.environ, PATH="%s:%s" % (sandbox / "bin", os.environ["PATH"]))
    argv = [sys.executable, SWITCH, "--url", "http://127.0.0.1:%d/health" % service.port,
            "--successes", "3", "--interval", "0.05", "--timeout", "3",
            "--staged", str(sandbox / "svc.conf.next"), "--live", str(sandbox / "svc.conf"),
            "--nginx", str(sandbox / "bin" / "nginx"),
            "--verify-url", "http://127.0.0.1:%d/version" % service.port, "--verify-version", verify_version,
            "--verify-requests", "3", "--verify-timeout", "2"] + list(extra)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    reloads = (sandbox / "reloads.log").read_text().splitlines() if (sandbox / "reloads.log").exists() else []
    return proc, (sandbox / "svc.conf").read_text(), reloads


def test_switch_waits_for_a_streak_switches_and_verifies(sandbox):
    # A 500 in the middle resets the count: 200, 500, then three 200s in a row.
    service = _Service(str(sandbox), health=(200, 500, 200, 200, 200), stale=2)
    try:
        proc, live, reloads = _switch(sandbox, service)
    finally:
        service.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["probes"] == 5
    assert result["verified"] == 3
    assert result["healthy_at"] <= result["switched_at"] <= result["verified_at"]
    assert live == "version=1.1.0\n"
    assert not (sandbox / "svc.conf.next").exists()  # renamed into place
    assert reloads == ["reload nginx"]


def test_unhealthy_slot_is_never_switched_to(sandbox):
    service = _Service(str(sandbox), health=(500,))
    try:
        proc, live, reloads = _switch(sandbox, service, "--timeout", "0.5")
    finally:
        service.close()
    assert proc.returncode == 1
    assert "did not answer 200 3 times in a row" in proc.stdout
    assert "last: HTTP 500" in proc.stdout
    assert live == "version=1.0.0\n"
    assert (sandbox / "svc.conf.next").exists()
    assert reloads == []


def test_switch_waits_for_every_instance(sandbox):
    """Two instances: one healthy, one answering 500: nginx is never switched, the message names the second."""
    healthy = _Service(str(sandbox))
    broken = _Service(str(sandbox), health=(500,))
    try:
        proc, live, reloads = _switch(sandbox, healthy, "--timeout", "0.5",
                                      "--url", "http://127.0.0.1:%d/health" % broken.port)
    finally:
        healthy.close()
        broken.close()
    assert proc.returncode == 1
    assert ("127.0.0.1:%d/health did not answer 200" % broken.port) in proc.stdout
    assert ("127.0.0.1:%d/health did not" % healthy.port) not in proc.stdout
    assert live == "version=1.0.0\n"
    assert reloads == []


def test_failed_nginx_test_restores_the_live_file_without_reload(sandbox):
    (sandbox / "nginx-fails").write_text("")
    service = _Service(str(sandbox))
    try:
        proc, live, reloads = _switch(sandbox, service)
    finally:
        service.close()
    assert proc.returncode == 1
    assert "nginx -t failed with the new upstream (previous file restored): emerg: bad upstream" in proc.stdout
    assert live == "version=1.0.0\n"
    assert reloads == []


def test_failed_verification_switches_back_at_once(sandbox):
    service = _Service(str(sandbox))
    try:
        proc, live, reloads = _switch(sandbox, service, verify_version="9.9.9")
    finally:
        service.close()
    assert proc.returncode == 1
    assert "did not return version 9.9.9" in proc.stdout
    assert "switched back to the previous upstream" in proc.stdout
    assert live == "version=1.0.0\n"
    assert reloads == ["reload nginx", "reload nginx"]


def test_verification_reads_the_configured_key_and_headers(sandbox):
    service = _Service(str(sandbox), version_key="release")
    try:
        proc, live, _reloads = _switch(sandbox, service, "--verify-key", "release", "--verify-header", "Host: api.example")
    finally:
        service.close()
    assert proc.returncode == 0, proc.stdout
    assert live == "version=1.1.0\n"


def test_verify_over_https_sends_the_host_header_as_the_tls_server_name(sandbox):
    """nginx refuses a handshake for a name it does not serve (ssl_reject_handshake): a verify URL of
    https://localhost/ with a Host header must send that name as SNI (seen in inventories/single)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ai.example.com",
                    "-keyout", str(sandbox / "site.key"), "-out", str(sandbox / "site.crt")],
                   check=True, capture_output=True)
    service = _Service(str(sandbox))
    names = []

    def sni(sock, name, ctx):
        names.append(name)
        return None if name == "ai.example.com" else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(sandbox / "site.crt"), str(sandbox / "site.key"))
    context.sni_callback = sni
    tls = socketserver.TCPServer(("127.0.0.1", 0), service.server.RequestHandlerClass)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    url = ["--verify-url", "https://localhost:%d/version" % tls.server_address[1], "--verify-insecure"]
    try:
        proc, live, _reloads = _switch(sandbox, service, *url, "--verify-header", "Host: ai.example.com")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert live == "version=1.1.0\n"
        assert set(names) == {"ai.example.com"}
        # Without the Host header the name is the URL's, and the handshake is refused.
        (sandbox / "svc.conf.next").write_text("version=1.2.0\n")
        proc, live, _reloads = _switch(sandbox, service, *url, "--verify-timeout", "1", verify_version="1.2.0")
        assert proc.returncode == 1
        assert "UNRECOGNIZED_NAME" in proc.stdout.upper()
        assert live == "version=1.1.0\n"
        # --verify-only (the rollback's check of the old version): the same server name, no switch.
        names.clear()
        only = [sys.executable, SWITCH, "--verify-only"] + url + ["--verify-version", "1.1.0", "--verify-requests", "2"]
        proc = subprocess.run(only + ["--verify-header", "Host: ai.example.com"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["verified"] == 2
        assert set(names) == {"ai.example.com"}
        proc = subprocess.run(only + ["--verify-timeout", "1"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "UNRECOGNIZED_NAME" in proc.stdout.upper()
        assert (sandbox / "svc.conf").read_text() == "version=1.1.0\n"
        # Without --verify-only, the switch's own options are required.
        proc = subprocess.run([sys.executable, SWITCH] + url + ["--verify-version", "1.1.0"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "--url, --staged, --live" in proc.stderr
    finally:
        tls.shutdown()
        tls.server_close()
        service.close()
