# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invalid variables of the base and docker roles fail before the role changes anything, naming the variable.

Wrong types and choices fail at argument_specs validation; the rules argument_specs cannot
express (the SSH lock-out guard, users that must exist) fail in the role's preflight.

One real ansible-playbook run per role against localhost. Each case includes the role in a
block whose rescue records the failure message. The run is limited to the probe's own tag and
the role's preflight tag: only the argument validation and the vars loading (both tagged
`always`) and the preflight (assertions and read-only look-ups) can run, which
test_probe_ran_only_read_only_tasks checks, so the probe never changes this machine. The base
run is also in check mode.
"""
import json
import os

import pytest
from lib.ansible_run import run_playbook

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvVbdFVAiFgXW0NY+2rEzRr1kc5KVPl3dMpq3ET4S1d test"

# case id -> (role, variables, expected). expected is None (must pass) or (stage, substrings of the
# failure message): stage "argspec" = failed by meta/argument_specs.yml, "preflight" = by the role's assertions.
ARGSPEC = "argspec"
PREFLIGHT = "preflight"
OPS = {"name": "ops", "ssh_keys": [KEY]}
CASES = {
    "base-valid": ("base", {
        "base_admin_users": [dict(OPS, groups=["sshusers"])],
        "base_ssh_allow_groups": ["sshusers"],
        "base_ufw_allowed_ports": [{"port": 443}, {"port": "60000:61000", "proto": "udp"}],
    }, None),
    "base-ufw-default-choice": ("base", {"base_ufw_default_incoming": "allow"},
                                (ARGSPEC, ["base_ufw_default_incoming", "deny, reject"])),
    "base-ssh-port-type": ("base", {"base_ssh_port": "twenty-two"}, (ARGSPEC, ["base_ssh_port", "int"])),
    "base-ssh-host-key-ecdsa": ("base", {"base_ssh_host_key_types": ["ed25519", "ecdsa"]},
                                (ARGSPEC, ["base_ssh_host_key_types", "ed25519, rsa"])),
    "base-ssh-rsa-2048": ("base", {"base_admin_users": [OPS], "base_ssh_rsa_host_key_bits": 2048},
                          (PREFLIGHT, ["base_ssh_rsa_host_key_bits must be 3072-16384 (got 2048)"])),
    "base-user-sudo-choice": ("base", {"base_admin_users": [dict(OPS, sudo="always")]},
                              (ARGSPEC, ["sudo", "base_admin_users", "nopasswd, password, none"])),
    "base-user-unknown-key": ("base", {"base_admin_users": [dict(OPS, sudo_nopasswd=True)]},
                              (ARGSPEC, ["sudo_nopasswd", "base_admin_users"])),
    "base-user-name-missing": ("base", {"base_admin_users": [{"ssh_keys": [KEY]}]},
                               (ARGSPEC, ["name", "base_admin_users", "required"])),
    "base-ufw-proto-choice": ("base", {"base_ufw_allowed_ports": [{"port": 80, "proto": "tcpx"}]},
                              (ARGSPEC, ["proto", "base_ufw_allowed_ports", "tcp, udp, any"])),
    "base-sysctl-type": ("base", {"base_sysctl": [1, 2]}, (ARGSPEC, ["base_sysctl", "dict"])),
    "base-root-login-choice": ("base", {"base_ssh_permit_root_login": "yes"},
                               (ARGSPEC, ["base_ssh_permit_root_login"])),
    # The SSH lock-out guard and the rules argument_specs cannot express.
    "base-lockout-no-admin": ("base", {"base_admin_users": []},
                              (PREFLIGHT, ["Refusing to harden SSH", "base_admin_users", "base_ssh_lockout_check"])),
    "base-lockout-admin-without-sudo": ("base", {"base_admin_users": [dict(OPS, sudo="none")]},
                                        (PREFLIGHT, ["Refusing to harden SSH", "sudo other than none"])),
    "base-lockout-allow-groups": ("base", {"base_admin_users": [OPS], "base_ssh_allow_groups": ["sshusers"]},
                                  (PREFLIGHT, ["Refusing to harden SSH", "(ops)", "base_ssh_allow_groups"])),
    "base-lockout-check-off": ("base", {"base_admin_users": [], "base_ssh_lockout_check": False}, None),
    "base-ufw-port-range": ("base", {"base_admin_users": [OPS], "base_ufw_allowed_ports": [{"port": "70000"}]},
                            (PREFLIGHT, ["base_ufw_allowed_ports", "70000"])),
    "base-proxy-url": ("base", {"base_admin_users": [OPS], "base_proxy_http": "proxy:3128"},
                       (PREFLIGHT, ["base_proxy_http", "http://"])),
    "docker-valid": ("docker", {"docker_install_source": "distro", "docker_users": ["root"]}, None),
    "docker-source-choice": ("docker", {"docker_install_source": "snap"},
                             (ARGSPEC, ["docker_install_source", "docker, distro"])),
    "docker-max-file-type": ("docker", {"docker_log_max_file": "three"}, (ARGSPEC, ["docker_log_max_file", "int"])),
    "docker-users-type": ("docker", {"docker_users": {"ops": 1}}, (ARGSPEC, ["docker_users", "list"])),
    "docker-daemon-options-type": ("docker", {"docker_daemon_options": [1]},
                                   (ARGSPEC, ["docker_daemon_options", "dict"])),
    "docker-service-state-choice": ("docker", {"docker_service_state": "restarted"},
                                    (ARGSPEC, ["docker_service_state", "started, stopped"])),
    # The role adds existing users to the docker group; it does not create them.
    "docker-users-missing": ("docker", {"docker_users": ["root", "aistack-no-such-user"]},
                             (PREFLIGHT, ["docker_users", "aistack-no-such-user"])),
    # docker_firewall_rules (DOCKER-USER). The probe's inventory (FW_HOSTS) has group fw_api with two
    # hosts at private addresses and fw_loop with one reachable only through 127.0.0.1.
    "docker-fw-valid": ("docker", {
        "docker_firewall_controller_addresses": ["10.9.1.2"],
        "docker_firewall_rules": [{"port": 5432, "groups": ["fw_api"]},
                                  {"port": "9000:9001", "proto": "udp", "sources": ["10.1.0.0/16", "192.168.1.7"]},
                                  {"port": 22, "sources": ["10.9.0.0/16"], "comment": "ssh container"}]}, None),
    "docker-fw-port": ("docker", {"docker_firewall_rules": [{"port": 70000, "sources": ["10.1.0.0/16"]},
                                                            {"port": "9001:9000", "sources": ["10.1.0.0/16"]}]},
                       (PREFLIGHT, ["docker_firewall_rules[0] (port 70000): port must be 1-65535",
                                    "docker_firewall_rules[1] (port 9001:9000): port must be"])),
    "docker-fw-empty-allow-list": ("docker", {"docker_firewall_rules": [{"port": 5432}]},
                                   (PREFLIGHT, ["docker_firewall_rules[0] (port 5432): the allow-list is empty"])),
    "docker-fw-unknown-group": ("docker", {"docker_firewall_rules": [{"port": 5432, "groups": ["fw_nowhere"]}]},
                                (PREFLIGHT, ["docker_firewall_rules[0] (port 5432): group fw_nowhere is not in the inventory"])),
    "docker-fw-loopback-host": ("docker", {"docker_firewall_rules": [{"port": 19530, "groups": ["fw_api", "fw_loop"]}]},
                                (PREFLIGHT, ["host fw-loop1 (ansible_host=127.0.0.1) has no private IPv4 address",
                                             "set aistack_private_address"])),
    "docker-fw-bad-source": ("docker", {"docker_firewall_rules": [{"port": 5432, "sources": ["10.0.0.300", "0.0.0.0/0"]}]},
                             (PREFLIGHT, ["sources must hold IPv4 addresses or CIDRs narrower than /0, not 10.0.0.300",
                                          "not 0.0.0.0/0"])),
    "docker-fw-ssh-lockout": ("docker", {"docker_firewall_controller_addresses": ["192.168.5.5"],
                                         "docker_firewall_rules": [{"port": "20:30", "sources": ["10.1.0.0/16"]}]},
                              (PREFLIGHT, ["docker_firewall_rules[0] (port 20:30): the rule covers the SSH port 22",
                                           "does not allow the controller 192.168.5.5", "lock out SSH"])),
    "docker-fw-ssh-port-unknown-controller": ("docker", {"docker_firewall_ssh_port": 2222,
                                                         "docker_firewall_rules": [{"port": 2222, "groups": ["fw_api"]}]},
                                              (PREFLIGHT, ["covers the SSH port 2222/22 and the controller address is unknown",
                                                           "docker_firewall_controller_addresses"])),
    "docker-fw-action-choice": ("docker", {"docker_firewall_action": "ACCEPT"},
                                (ARGSPEC, ["docker_firewall_action", "DROP, REJECT"])),
    "docker-fw-proto-choice": ("docker", {"docker_firewall_rules": [{"port": 53, "proto": "icmp", "sources": ["10.0.0.1"]}]},
                               (ARGSPEC, ["proto", "docker_firewall_rules", "tcp, udp"])),
}

# Inventory hosts the docker firewall cases resolve groups against (added with add_host, never contacted).
FW_HOSTS = [
    {"name": "fw-api1", "groups": "fw_api", "aistack_private_address": "10.20.0.11"},
    {"name": "fw-api2", "groups": "fw_api", "aistack_bind_address": "10.20.0.12"},
    {"name": "fw-loop1", "groups": "fw_loop", "ansible_host": "127.0.0.1"},
]

# Tags each run is limited to, and whether it runs in check mode (the docker preflight skips
# the missing-user check in check mode, where the user may be "created" by base first).
RUNS = {
    "base": (["argspec_probe", "base_preflight"], True),
    "docker": (["argspec_probe", "docker_preflight"], False),
}


def _play(role):
    tasks = [{"name": "inventory host " + h["name"], "tags": ["argspec_probe"], "ansible.builtin.add_host": h}
             for h in (FW_HOSTS if role == "docker" else [])]
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
                    # a failed loop says "One or more items failed": add the failed items' messages
                    "argspec_results": "{{ argspec_results | combine({'%s': ansible_failed_result.msg"
                                       " | default('failed without msg') ~ ' ' ~ (ansible_failed_result.results"
                                       " | default([]) | selectattr('failed', 'defined') | selectattr('failed')"
                                       " | map(attribute='msg') | join('; '))}) }}" % case}},
            ],
        })
    tasks.append({"name": "emit", "tags": ["argspec_probe"], "ansible.builtin.debug": {"var": "argspec_results"}})
    return [{"hosts": "localhost", "gather_facts": True, "vars": {"argspec_results": {}}, "tasks": tasks}]


def _run(role):
    tags, check = RUNS[role]
    proc = run_playbook(_play(role), "--tags", ",".join(tags), *(["--check"] if check else []), timeout=300)
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
def test_invalid_variables_fail_naming_them(results, case):
    role, _variables, expect = CASES[case]
    res, _ran = results[role]
    msg = res[case]
    if expect is None:
        assert msg == "PASSED"
    else:
        stage, needles = expect
        assert msg.startswith("Validation of arguments failed") == (stage == ARGSPEC), msg
        for needle in needles:
            assert needle in msg, "%r not in %r" % (needle, msg)


@pytest.mark.parametrize("role", ["base", "docker"])
def test_probe_ran_only_read_only_tasks(results, role):
    """Only validation, variable loading and the preflight ran: the probe cannot have changed this machine."""
    _res, ran = results[role]
    prefix = "aistack.infra.%s : " % role
    role_tasks = [n[len(prefix):] for n in ran if n.startswith(prefix)]
    allowed = ("Validating arguments against arg spec", "Load the variables of this distribution", "Preflight | ")
    assert role_tasks, ran
    assert all(n.startswith(allowed) for n in role_tasks), role_tasks
    assert any(n.startswith("Validating arguments against arg spec") for n in role_tasks), role_tasks
    assert any(n.startswith("Preflight | ") for n in role_tasks), role_tasks
