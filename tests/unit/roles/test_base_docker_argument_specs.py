# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invalid variables of the base and docker roles fail at argument_specs validation, naming the variable.

One real ansible-playbook run per role against localhost. Each case includes the role in a
block whose rescue records the failure message. The run is limited to a tag no role task
carries (`--tags argspec_probe`) and to check mode: only the role's argument validation (and the
vars-loading task, both tagged `always`) can run, so nothing of the role touches this machine
even if a case were wrongly accepted.
"""
import json
import os
import subprocess
import tempfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvVbdFVAiFgXW0NY+2rEzRr1kc5KVPl3dMpq3ET4S1d test"

# case id -> (role, variables, substrings the failure message must contain); None = must pass
CASES = {
    "base-valid": ("base", {
        "base_admin_users": [{"name": "ops", "ssh_keys": [KEY]}],
        "base_ufw_allowed_ports": [{"port": 443}, {"port": "60000:61000", "proto": "udp"}],
    }, None),
    "base-ufw-default-choice": ("base", {"base_ufw_default_incoming": "allow"},
                                ["base_ufw_default_incoming", "deny, reject"]),
    "base-ssh-port-type": ("base", {"base_ssh_port": "twenty-two"}, ["base_ssh_port", "int"]),
    "base-user-sudo-choice": ("base", {"base_admin_users": [{"name": "ops", "sudo": "always"}]},
                              ["sudo", "base_admin_users", "nopasswd, password, none"]),
    "base-user-name-missing": ("base", {"base_admin_users": [{"ssh_keys": [KEY]}]},
                               ["name", "base_admin_users", "required"]),
    "base-ufw-proto-choice": ("base", {"base_ufw_allowed_ports": [{"port": 80, "proto": "tcpx"}]},
                              ["proto", "base_ufw_allowed_ports", "tcp, udp, any"]),
    "base-sysctl-type": ("base", {"base_sysctl": [1, 2]}, ["base_sysctl", "dict"]),
    "base-root-login-choice": ("base", {"base_ssh_permit_root_login": "yes"},
                               ["base_ssh_permit_root_login"]),
    "docker-valid": ("docker", {"docker_install_source": "distro", "docker_users": ["ops"]}, None),
    "docker-source-choice": ("docker", {"docker_install_source": "snap"},
                             ["docker_install_source", "docker, distro"]),
    "docker-max-file-type": ("docker", {"docker_log_max_file": "three"}, ["docker_log_max_file", "int"]),
    "docker-users-type": ("docker", {"docker_users": {"ops": 1}}, ["docker_users", "list"]),
    "docker-daemon-options-type": ("docker", {"docker_daemon_options": [1]}, ["docker_daemon_options", "dict"]),
    "docker-service-state-choice": ("docker", {"docker_service_state": "restarted"},
                                    ["docker_service_state", "started, stopped"]),
}


def _play(role):
    tasks = []
    for case, (case_role, variables, _expect) in CASES.items():
        if case_role != role:
            continue
        # No tags on the block itself: a block's tags are inherited by the tasks of a role included in it.
        tasks.append({
            "name": case,
            "block": [
                {"name": "include " + case, "ansible.builtin.include_role": {"name": "aistack.infra." + role},
                 "vars": variables, "tags": ["argspec_probe"]},
                {"name": "record pass " + case, "tags": ["argspec_probe"], "ansible.builtin.set_fact": {
                    "argspec_results": "{{ argspec_results | combine({'%s': 'PASSED'}) }}" % case}},
            ],
            "rescue": [
                {"name": "record failure " + case, "tags": ["argspec_probe"], "ansible.builtin.set_fact": {
                    "argspec_results": "{{ argspec_results | combine({'%s': ansible_failed_result.msg"
                                       " | default('failed without msg')}) }}" % case}},
            ],
        })
    tasks.append({"name": "emit", "tags": ["argspec_probe"], "ansible.builtin.debug": {"var": "argspec_results"}})
    return [{"hosts": "localhost", "gather_facts": True, "vars": {"argspec_results": {}}, "tasks": tasks}]


def _run(role):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": os.path.join(REPO, ".venv", "bin", "python"),
        "ANSIBLE_NOCOLOR": "1",
    })
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(_play(role), fh)
        path = fh.name
    try:
        proc = subprocess.run(
            [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "--check", "--tags", "argspec_probe", path],
            env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    finally:
        os.unlink(path)
    out = json.loads(proc.stdout)
    tasks = out["plays"][0]["tasks"]
    ran = [t["task"]["name"] for t in tasks]
    emitted = [t for t in tasks if t["task"]["name"] == "emit"]
    assert emitted, "the probe play did not finish (rc=%s): %s" % (proc.returncode, proc.stderr[-2000:])
    return emitted[0]["hosts"]["localhost"]["argspec_results"], ran


@pytest.fixture(scope="module")
def results():
    collected = {}
    for role in ("base", "docker"):
        res, ran = _run(role)
        collected[role] = (res, ran)
    return collected


@pytest.mark.parametrize("case", sorted(CASES))
def test_argument_spec_validation(results, case):
    role, _variables, expect = CASES[case]
    res, _ran = results[role]
    msg = res[case]
    if expect is None:
        assert msg == "PASSED"
    else:
        assert msg.startswith("Validation of arguments failed"), msg
        for needle in expect:
            assert needle in msg, "%r not in %r" % (needle, msg)


@pytest.mark.parametrize("role", ["base", "docker"])
def test_probe_ran_no_role_task(results, role):
    """Only validation and variable loading ran: the probe cannot have changed this machine."""
    _res, ran = results[role]
    role_tasks = [n for n in ran if n.startswith("aistack.infra.%s : " % role)]
    allowed = ("Validating arguments against arg spec", "Load the variables of this distribution")
    assert role_tasks, ran
    assert all(any(a in n for a in allowed) for n in role_tasks), role_tasks
    assert any("Validating arguments against arg spec" in n for n in role_tasks), role_tasks
