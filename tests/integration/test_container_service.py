"""The shared container shape (role ``aistack.infra.container_service``) on this machine's Docker engine.

Real containers from the lab's Debian base image: a healthy service is started, labelled, published
on its address only, waited for and left unchanged by a second run and by check mode; a container
that never becomes healthy fails naming ``docker logs``; wildcard publishing is refused before
anything is created; secret environment values never reach the output.
"""
import json
import secrets
import subprocess

import pytest

from lib.ansible_run import prepare_lab_engine, run_playbook

IMAGE = "aistack-lab/debian:bookworm"
PREFIX = "aistack-test-cs"


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def cleanup():
    for name in (PREFIX, PREFIX + "-bad", PREFIX + "-wild", PREFIX + "-hostns"):
        docker("rm", "-f", name, check=False)
    docker("volume", "rm", "-f", PREFIX + "-data", check=False)
    docker("network", "rm", PREFIX + "-net", check=False)
    docker("network", "rm", PREFIX + "-hostnet", check=False)


@pytest.fixture(scope="module")
def engine():
    prepare_lab_engine()
    cleanup()
    yield
    cleanup()


def include(variables):
    return {"name": "include", "ansible.builtin.include_role": {"name": "aistack.infra.container_service"},
            "vars": variables}


def play(*tasks):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def service_vars(**extra):
    base = {
        "container_service_name": PREFIX,
        "container_service_image": IMAGE,
        "container_service_stack": "cstest",
        "container_service_network": PREFIX + "-net",
        "container_service_network_aliases": ["svc"],
        "container_service_command": ["sleep", "infinity"],
        "container_service_env": {"PLAIN": 1},
        "container_service_volumes": [PREFIX + "-data:/data"],
        "container_service_published_ports": ["127.0.0.1:18099:8080"],
        "container_service_healthcheck": {"test": ["CMD", "test", "-d", "/data"], "interval": "1s",
                                          "timeout": "2s", "retries": 3, "start_period": "5s"},
        "container_service_health_delay": 1,
        "container_service_health_retries": 30,
    }
    base.update(extra)
    return base


def stats(proc):
    out = json.loads(proc.stdout)
    return out["stats"]["localhost"]


def inspect(name):
    return json.loads(docker("inspect", name).stdout)[0]


def test_healthy_service_runs_once_and_stays_unchanged(engine):
    secret = secrets.token_urlsafe(12)
    variables = service_vars(container_service_secret_env={"SERVICE_PASSWORD": secret})
    first = run_playbook(play(include(variables)))
    assert first.returncode == 0, first.stdout[-3000:]
    assert stats(first)["changed"] >= 3  # network, volume, container
    assert secret not in first.stdout and secret not in first.stderr

    info = inspect(PREFIX)
    assert info["State"]["Health"]["Status"] == "healthy"
    assert info["Config"]["Labels"]["io.aistack.stack"] == "cstest"
    assert "PLAIN=1" in info["Config"]["Env"] and "SERVICE_PASSWORD=" + secret in info["Config"]["Env"]
    assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18099"}]}
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "50m"}}
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert "svc" in info["NetworkSettings"]["Networks"][PREFIX + "-net"]["Aliases"]
    volume = json.loads(docker("volume", "inspect", PREFIX + "-data").stdout)[0]
    assert volume["Labels"] == {"io.aistack.stack": "cstest"}
    started = info["State"]["StartedAt"]

    again = run_playbook(play(include(variables)))
    assert again.returncode == 0, again.stdout[-3000:]
    assert stats(again)["changed"] == 0
    check = run_playbook(play(include(variables)), "--check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert stats(check)["changed"] == 0
    assert inspect(PREFIX)["State"]["StartedAt"] == started

    changed_env = run_playbook(play(include(service_vars(
        container_service_secret_env={"SERVICE_PASSWORD": secret}, container_service_env={"PLAIN": 2}))))
    assert changed_env.returncode == 0, changed_env.stdout[-3000:]
    assert stats(changed_env)["changed"] == 1
    assert "PLAIN=2" in inspect(PREFIX)["Config"]["Env"]


def test_unhealthy_container_fails_naming_docker_logs(engine):
    variables = service_vars(
        container_service_name=PREFIX + "-bad", container_service_published_ports=[],
        container_service_healthcheck={"test": ["CMD", "false"], "interval": "1s", "timeout": "2s", "retries": 1},
        container_service_health_retries=5)
    proc = run_playbook(play(include(variables)))
    assert proc.returncode != 0
    assert "container %s-bad is not healthy" % PREFIX in proc.stdout
    assert "docker logs %s-bad" % PREFIX in proc.stdout


@pytest.mark.parametrize("port", ["18098:8080", "0.0.0.0:18098:8080", "[::]:18098:8080", "8080"])
def test_wildcard_publishing_is_refused_before_anything_changes(engine, port):
    variables = service_vars(container_service_name=PREFIX + "-wild", container_service_network=PREFIX + "-wildnet",
                             container_service_published_ports=[port])
    proc = run_playbook(play(include(variables)))
    assert proc.returncode != 0
    assert "container_service_allow_wildcard" in proc.stdout and port in proc.stdout
    assert docker("network", "inspect", PREFIX + "-wildnet", check=False).returncode != 0
    assert docker("inspect", PREFIX + "-wild", check=False).returncode != 0


def test_missing_required_input_is_named(engine):
    variables = service_vars()
    del variables["container_service_healthcheck"]
    proc = run_playbook(play(include(variables)))
    assert proc.returncode != 0
    assert "container_service_healthcheck" in proc.stdout


def test_host_namespaces_without_a_network_or_published_ports(engine):
    """node_exporter's shape: the host's network and PID namespaces, a read-only bind with a propagation mode.

    node_exporter binds / with rslave, which Docker allows only when / is a shared or slave mount
    (systemd makes it shared; this machine's / without systemd is private), so this test binds /etc
    and passes rprivate through.
    """
    variables = service_vars(
        container_service_name=PREFIX + "-hostns", container_service_network=PREFIX + "-hostnet",
        container_service_network_aliases=[], container_service_published_ports=[],
        container_service_network_mode="host", container_service_pid_mode="host",
        container_service_volumes=["/etc:/host:ro,rprivate"],
        container_service_healthcheck={"test": ["CMD", "test", "-f", "/host/hostname"], "interval": "1s",
                                       "timeout": "2s", "retries": 3, "start_period": "5s"})
    first = run_playbook(play(include(variables)))
    assert first.returncode == 0, first.stdout[-3000:]
    info = inspect(PREFIX + "-hostns")
    assert info["State"]["Health"]["Status"] == "healthy"
    assert info["HostConfig"]["NetworkMode"] == "host" and info["HostConfig"]["PidMode"] == "host"
    assert [(m["Destination"], m["RW"], m["Propagation"]) for m in info["Mounts"]] == [("/host", False, "rprivate")]
    # The host's PID 1 is visible: the container shares the host's PID namespace.
    assert docker("exec", PREFIX + "-hostns", "test", "-d", "/proc/1").returncode == 0
    assert docker("network", "inspect", PREFIX + "-hostnet", check=False).returncode != 0
    again = run_playbook(play(include(variables)))
    assert again.returncode == 0, again.stdout[-3000:]
    assert stats(again)["changed"] == 0

    published = run_playbook(play(include(dict(variables, container_service_published_ports=["127.0.0.1:18097:9100"]))))
    assert published.returncode != 0
    assert "Docker ignores published ports" in published.stdout
