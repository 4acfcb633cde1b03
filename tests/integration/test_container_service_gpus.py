"""GPU pins of ``aistack.infra.container_service`` on this machine's Docker engine (no GPU here).

A pin this host cannot hold (a GPU index on a host without GPUs, memory or CPUs above the host's)
fails before anything is created, naming the variable. A pin that fits (the gpu role's
``gpu_device_count`` fact given as the seed's 4 GPUs) reaches the engine as
``HostConfig.DeviceRequests`` with driver ``nvidia`` and the device ids: the engine, which has no
NVIDIA Container Toolkit here, then refuses to start it with its own "could not select device
driver" error, which is what a host without the toolkit says. The container running on a GPU is
not tested here (no GPU machine).
"""
import json
import subprocess

import pytest

from lib.ansible_run import prepare_lab_engine, run_playbook

IMAGE = "aistack-lab/debian:bookworm"
PREFIX = "aistack-test-csgpu"


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def cleanup():
    docker("rm", "-f", PREFIX, check=False)
    docker("network", "rm", PREFIX + "-net", check=False)


@pytest.fixture(scope="module")
def engine():
    prepare_lab_engine()
    cleanup()
    yield
    cleanup()


def run(variables, facts=None):
    tasks = []
    if facts:
        tasks.append({"name": "facts", "ansible.builtin.set_fact": facts})
    tasks.append({"name": "include", "ansible.builtin.include_role": {"name": "aistack.infra.container_service"},
                  "vars": dict({
                      "container_service_name": PREFIX,
                      "container_service_image": IMAGE,
                      "container_service_pull": "never",
                      "container_service_stack": "csgpu",
                      "container_service_network": PREFIX + "-net",
                      "container_service_command": ["sleep", "infinity"],
                      "container_service_healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 3},
                      "container_service_health_delay": 1,
                      "container_service_health_retries": 10,
                  }, **variables)})
    proc = run_playbook([{"hosts": "localhost", "gather_facts": True, "tasks": tasks}])
    out = json.loads(proc.stdout)
    failed = [(t["task"]["name"], h) for t in out["plays"][0]["tasks"] for h in t["hosts"].values() if h.get("failed")]
    return proc, failed


def nothing_created():
    assert docker("inspect", PREFIX, check=False).returncode != 0
    assert docker("network", "inspect", PREFIX + "-net", check=False).returncode != 0


def host_memory_mb():
    with open("/proc/meminfo") as fh:
        return int(fh.readline().split()[1]) // 1024


def test_gpu_index_on_a_host_without_gpus_fails_before_anything(engine):
    proc, failed = run({"container_service_gpus": [0, 1]})
    assert proc.returncode != 0 and failed
    name, result = failed[0]
    assert "Check the GPU pin and the limits fit this host" in name
    assert "container_service_gpus" in result["msg"]
    assert "container_service.%s.gpus: GPU 0, 1 beyond the host, which has no GPU" % PREFIX in result["msg"]
    nothing_created()


def test_memory_and_cpus_above_the_host_fail_before_anything(engine):
    proc, failed = run({"container_service_memory": "%dm" % (host_memory_mb() * 2), "container_service_cpus": 4096})
    assert proc.returncode != 0
    msg = failed[0][1]["msg"]
    assert "container_service_memory" in msg and "is above the host memory" in msg
    assert "container_service.%s.cpus 4096" % PREFIX in msg and "CPUs" in msg
    nothing_created()


def test_index_beyond_the_gpu_roles_count_fails(engine):
    proc, failed = run({"container_service_gpus": "3,4"}, facts={"gpu_device_count": 4})
    assert proc.returncode != 0
    assert "GPU 4 beyond the host, which has 4 GPUs (indices 0-3)" in failed[0][1]["msg"]
    nothing_created()


def test_a_fitting_pin_reaches_the_engine_as_device_requests(engine):
    proc, failed = run({"container_service_gpus": [2, 1], "container_service_memory": "256m", "container_service_cpus": 1},
                       facts={"gpu_device_count": 4})
    assert proc.returncode != 0 and failed
    name, result = failed[0]
    assert name == "include" or "Run the container" in name, name
    # The engine's own refusal: no NVIDIA Container Toolkit (no GPU) on this machine.
    assert 'could not select device driver "nvidia" with capabilities: [[gpu]]' in result["msg"]
    host_config = json.loads(docker("inspect", PREFIX).stdout)[0]["HostConfig"]
    assert host_config["DeviceRequests"] == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1", "2"],
                                              "Capabilities": [["gpu"]], "Options": None}]
    assert host_config["Memory"] == 256 * 1024 * 1024 and host_config["NanoCpus"] == 10 ** 9
    cleanup()


def test_no_pin_no_device_requests(engine):
    proc, failed = run({})
    assert proc.returncode == 0, failed
    assert json.loads(docker("inspect", PREFIX).stdout)[0]["HostConfig"]["DeviceRequests"] in (None, [])
    cleanup()
