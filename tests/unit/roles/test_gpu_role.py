# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu role's Docker runtime and the docker role's daemon.json merge, with the NVIDIA keys.

The merge is the docker role's own expression (`_docker_daemon_merged` in roles/docker/vars/main.yml),
evaluated by real ansible-playbook with the docker role's defaults and vars; the file content is what
its configure.yml writes (`to_nice_json(indent=2)` + newline). The gpu role hands the docker role
`_gpu_docker_daemon_options` (roles/gpu/vars/main.yml). The NVIDIA side is the real
`nvidia-ctk runtime configure --runtime=docker` of NVIDIA Container Toolkit 1.17.8, built from the Go
module proxy by lab/artifacts/nvidia-ctk/build.sh (no GPU needed). Proven, in every order:
NVIDIA's keys and the docker role's keys both stay, and the second run of either changes nothing.
"""
import json
import os
import subprocess

import pytest
import yaml

from lib.ansible_run import REPO, run_playbook

BUILD = os.path.join(REPO, "lab", "artifacts", "nvidia-ctk", "build.sh")
NVIDIA_KEYS = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
ROLE_STEPS = ("docker", "gpu", "gpu-default")
DOCKER_KEYS = ("live-restore", "log-driver", "log-opts", "no-new-privileges", "userland-proxy", "icc",
               "registry-mirrors", "insecure-registries")


@pytest.fixture(scope="module")
def nvidia_ctk():
    proc = subprocess.run([BUILD], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def ctk_configure(nvidia_ctk, tmp_path, content, *extra):
    """Run the real nvidia-ctk on a daemon.json holding ``content`` (None: no file yet; nvidia-ctk
    refuses an empty file with "unable to load config for runtime docker: EOF"); return the new content."""
    path = tmp_path / "daemon.json"
    if path.exists():
        path.unlink()
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([nvidia_ctk, "runtime", "configure", "--runtime=docker", "--config=%s" % path] + list(extra),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return path.read_text()


def role_writes(tmp_path, steps, inventory_vars=None):
    """Evaluate, for each step ("docker" = the docker role's run, "gpu" = the gpu role's include of
    it, "gpu-default" = with gpu_docker_default_runtime), the content configure.yml writes, each
    step reading what the one before wrote. A first step that is none of these is the text of a file
    written by someone else (nvidia-ctk's output). Returns the list of contents after each step."""
    given = steps[0] not in ROLE_STEPS
    tasks = [{"name": "start", "ansible.builtin.set_fact": {"current": steps[0] if given else ""}}]
    for i, step in enumerate(steps):
        if i == 0 and given:
            tasks.append({"name": "given 0", "ansible.builtin.set_fact": {"out_0": step}})
            continue
        step_vars = {"__docker_daemon_json_current": {"content": "{{ current | b64encode }}"}}
        if step.startswith("gpu"):
            step_vars["docker_daemon_options"] = "{{ _gpu_docker_daemon_options }}"
            step_vars["gpu_docker_default_runtime"] = step == "gpu-default"
        tasks.append({"name": "step %d" % i, "vars": step_vars, "ansible.builtin.set_fact": {
            "out_%d" % i: "{{ _docker_daemon_merged | to_nice_json(indent=2) }}\n"}})
        tasks.append({"name": "next %d" % i, "ansible.builtin.set_fact": {"current": "{{ out_%d }}" % i}})
    tasks.append({"name": "emit", "ansible.builtin.debug": {"msg": "{{ [%s] }}" % ", ".join(
        "out_%d" % i for i in range(len(steps)))}})
    roles = os.path.join(REPO, "roles")
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [os.path.join(roles, r, d, "main.yml") for r in ("docker", "gpu") for d in ("defaults", "vars")],
             "tasks": tasks}]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": inventory_vars or {}}}}))
    proc = run_playbook(play, "-i", str(inventory))
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = json.loads(proc.stdout)["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]
    return out


def keys_of_both(content, default_runtime=False):
    data = json.loads(content)
    assert data["runtimes"]["nvidia"] == NVIDIA_KEYS["runtimes"]["nvidia"], data
    assert all(k in data for k in DOCKER_KEYS), data
    assert data["live-restore"] is True and {k: data["log-opts"][k] for k in ("max-file", "max-size")} == {"max-file": "3", "max-size": "10m"}
    assert (data.get("default-runtime") == "nvidia") is default_runtime
    return data


def test_gpu_runtime_keys_are_what_nvidia_ctk_writes(nvidia_ctk, tmp_path):
    from_ctk = json.loads(ctk_configure(nvidia_ctk, tmp_path, "{}"))
    assert from_ctk == NVIDIA_KEYS
    gpu_only = role_writes(tmp_path, ["gpu"], {"docker_daemon_options": {}})
    assert {k: v for k, v in json.loads(gpu_only[0]).items() if k not in DOCKER_KEYS} == from_ctk


def test_nvidia_ctk_then_docker_role_then_gpu_role(nvidia_ctk, tmp_path):
    ctk = ctk_configure(nvidia_ctk, tmp_path, None)
    written = role_writes(tmp_path, [ctk, "docker", "docker", "gpu", "docker"])
    keys_of_both(written[1])
    assert written[2] == written[1] == written[3] == written[4], "a second run changed daemon.json"


def test_docker_role_then_nvidia_ctk_then_docker_role(nvidia_ctk, tmp_path):
    docker_first = role_writes(tmp_path, ["docker"])[0]
    assert "runtimes" not in json.loads(docker_first)
    after_ctk = ctk_configure(nvidia_ctk, tmp_path, docker_first)
    keys_of_both(after_ctk)
    again = role_writes(tmp_path, [after_ctk, "docker", "gpu"])
    keys_of_both(again[1])
    assert again[1] == again[2]
    # nvidia-ctk run again on the role's file: the same keys (it only reformats with 4 spaces).
    assert json.loads(ctk_configure(nvidia_ctk, tmp_path, again[2])) == json.loads(again[2])


def test_docker_role_then_gpu_role_then_nvidia_ctk(nvidia_ctk, tmp_path):
    written = role_writes(tmp_path, ["docker", "gpu", "gpu", "docker"])
    keys_of_both(written[1])
    assert written[1] == written[2] == written[3]
    assert json.loads(ctk_configure(nvidia_ctk, tmp_path, written[3])) == json.loads(written[3])


def test_default_runtime_both_ways(nvidia_ctk, tmp_path):
    written = role_writes(tmp_path, ["docker", "gpu-default", "docker"])
    keys_of_both(written[1], default_runtime=True)
    assert written[2] == written[1], "the docker role dropped default-runtime"
    from_ctk = ctk_configure(nvidia_ctk, tmp_path, role_writes(tmp_path, ["docker"])[0], "--set-as-default")
    assert json.loads(from_ctk) == json.loads(written[1])


def test_inventory_daemon_options_and_foreign_keys_survive_the_gpu_include(tmp_path):
    foreign = json.dumps({"features": {"buildkit": True}, "log-opts": {"labels": "team"},
                          "runtimes": {"crun": {"path": "/usr/bin/crun"}}})
    written = role_writes(tmp_path, [foreign, "gpu", "docker"],
                          {"docker_daemon_options": {"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}}}})
    data = keys_of_both(written[1])
    assert data["features"] == {"buildkit": True}
    assert data["log-opts"]["labels"] == "team"
    assert data["default-ulimits"]["nofile"]["Soft"] == 65536
    # The runtimes dict is merged key by key: another runtime stays next to nvidia.
    assert json.loads(written[1])["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert written[2] == written[1]


