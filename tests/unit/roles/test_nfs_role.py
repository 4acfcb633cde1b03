# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nfs role: invalid variables fail in preflight, naming the variable, before any change; the
exports (kernel /etc/exports.d, NFS-Ganesha EXPORT blocks), nfs.conf and the units' drop-in render
from the inventory's groups.

Real ansible-playbook runs against localhost. The inventory is made in the play with add_host
(hosts never contacted): storage1 in storage_servers, api1/api2 in api_servers at private
addresses, loop1 in loop_servers reachable only through 127.0.0.1. The preflight probe includes the
role once per case in check mode, limited to the probe's tag and `nfs_preflight`, so only argument
validation and the preflight assertions run (checked below). molecule `nfs` runs the role for real
against NFS-Ganesha and a userspace NFS client.
"""
import json
import os

import pytest
from lib.ansible_run import assert_probe_case, run_playbook

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "nfs")

HOSTS = [
    {"name": "storage1", "groups": "storage_servers", "aistack_private_address": "10.40.0.5"},
    {"name": "api1", "groups": "api_servers", "aistack_private_address": "10.40.0.11"},
    {"name": "api2", "groups": "api_servers", "aistack_bind_address": "10.40.0.12"},
    {"name": "loop1", "groups": "loop_servers", "ansible_host": "127.0.0.1"},
]
SERVER = {"nfs_server_enabled": True, "nfs_server_bind_address": "10.40.0.5", "nfs_export_client_groups": ["api_servers"]}
# A client: localhost plays api1 (its address), mounting from storage1, whose inventory declares the exports.
CLIENT = {"nfs_server_enabled": False, "aistack_private_address": "10.40.0.11", "nfs_client_server": "storage1",
          "nfs_client_mounts": [{"export": "postgres", "path": "/var/lib/aistack/postgres"}]}
# storage1's own inventory variables (the client side reads them through hostvars).
STORAGE_VARS = {"nfs_export_client_groups": ["api_servers"],
                "nfs_exports": [{"name": "postgres"}, {"name": "milvus"}, {"name": "backups", "groups": ["loop_servers"]}]}


def _with(base, **changes):
    variables = dict(base)
    variables.update(changes)
    return variables


CASES = {
    "server-valid": (SERVER, None),
    "server-empty-allow-list": (_with(SERVER, nfs_export_client_groups=[]),
                                ["nfs_exports[0] (milvus): the allow-list is empty: set nfs_export_client_groups"]),
    "server-unknown-group": (_with(SERVER, nfs_export_client_groups=["api_serverz"]),
                             ["nfs_exports[1] (postgres): group api_serverz (nfs_export_client_groups) is not in the inventory"]),
    "server-loopback-host": (_with(SERVER, nfs_export_client_groups=["api_servers", "loop_servers"]),
                             ["host loop1 has no private IPv4 address", "set aistack_private_address"]),
    "server-unknown-service": (_with(SERVER, nfs_exports=[{"name": "postgres"}, {"name": "qdrant"}]),
                               ["nfs_exports[1] (qdrant): unknown service directory (known: postgres, milvus, etcd, minio, "
                                "backups); give its owner, group, mode"]),
    "server-unknown-service-given": (_with(SERVER, nfs_exports=[{"name": "qdrant", "owner": 1000, "group": 1000,
                                                                  "mode": "0750"}]), None),
    "server-bad-name": (_with(SERVER, nfs_exports=[{"name": "../etc", "owner": 0, "group": 0, "mode": "0700"}]),
                        ["nfs_exports[0] (../etc): name must be a directory name"]),
    "server-duplicate": (_with(SERVER, nfs_exports=[{"name": "postgres"}, {"name": "postgres"}]),
                         ["nfs_exports names must be unique"]),
    "server-bad-client": (_with(SERVER, nfs_export_clients=["10.40.0.0/16", "0.0.0.0/0"]),
                          ["clients (nfs_export_clients) must hold IPv4 addresses or CIDRs narrower than /0, not 0.0.0.0/0"]),
    "server-bind-any": (_with(SERVER, nfs_server_bind_address="0.0.0.0"),
                        ["nfs_server_bind_address must be an IPv4 address other than 0.0.0.0"]),
    "server-minor-version": (_with(SERVER, nfs_server_minor_versions=[1, 3]),
                             ["nfs_server_minor_versions must list NFSv4 minor versions among 0, 1, 2"]),
    "server-grace": (_with(SERVER, nfs_server_grace_seconds=5), ["nfs_server_grace_seconds must be 10-3600, not 5"]),
    "server-implementation-choice": (_with(SERVER, nfs_server_implementation="nfsd"),
                                     ["nfs_server_implementation", "kernel, ganesha"]),
    "server-squash-choice": (_with(SERVER, nfs_exports=[{"name": "postgres", "squash": "squash_all"}]),
                             ["squash", "nfs_exports", "root_squash, no_root_squash, all_squash"]),
    "client-valid": (CLIENT, None),
    "client-export-undeclared": (_with(CLIENT, nfs_client_mounts=[{"export": "etcd", "path": "/var/lib/aistack/etcd"}]),
                                 ["nfs_client_mounts[0] (etcd): export etcd is not declared by the server storage1 "
                                  "(its nfs_exports: postgres, milvus, backups)"]),
    "client-not-allowed": (_with(CLIENT, nfs_client_mounts=[{"export": "backups", "path": "/srv/backups"}]),
                           ["nfs_client_mounts[0] (backups): the server storage1 does not allow this host (10.40.0.11) "
                            "on export backups (allowed: nobody"]),
    "client-unknown-server": (_with(CLIENT, nfs_client_server="storage9"),
                              ['nfs_client_server must be the inventory host serving the exports, not "storage9"']),
    "client-soft": (_with(CLIENT, nfs_client_mount_options=["vers=4.1", "soft"]),
                    ["nfs_client_mount_options must mount NFSv4 hard"]),
    "client-relative-path": (_with(CLIENT, nfs_client_mounts=[{"export": "postgres", "path": "data/pg"}]),
                             ["nfs_client_mounts[0] (postgres): path must be an absolute path"]),
    "client-no-own-address": (_with(CLIENT, aistack_private_address="127.0.0.1"),
                              ["this host (localhost) has no private IPv4 address"]),
}


def _inventory_tasks():
    tasks = [{"name": "inventory host " + h["name"], "tags": ["nfs_probe"], "ansible.builtin.add_host": h} for h in HOSTS]
    tasks[0]["ansible.builtin.add_host"] = dict(HOSTS[0], **STORAGE_VARS)
    return tasks


def _probe_play():
    tasks = _inventory_tasks()
    for case, (variables, _expect) in CASES.items():
        tasks.append({
            "name": case,
            "block": [
                {"name": "include " + case, "ansible.builtin.include_role": {"name": "aistack.infra.nfs"},
                 "vars": variables, "tags": ["nfs_probe"]},
                {"name": "record pass " + case, "tags": ["nfs_probe"], "ansible.builtin.set_fact": {
                    "probe_results": "{{ probe_results | combine({'%s': 'PASSED'}) }}" % case}},
            ],
            "rescue": [
                {"name": "record failure " + case, "tags": ["nfs_probe"], "ansible.builtin.set_fact": {
                    "probe_results": "{{ probe_results | combine({'%s': ansible_failed_result.msg"
                                     " | default('failed without msg')}) }}" % case}},
            ],
        })
    tasks.append({"name": "emit", "tags": ["nfs_probe"], "ansible.builtin.debug": {"var": "probe_results"}})
    return [{"hosts": "localhost", "gather_facts": True, "vars": {"probe_results": {}}, "tasks": tasks}]


@pytest.fixture(scope="module")
def probe():
    proc = run_playbook(_probe_play(), "--check", "--tags", "nfs_probe,nfs_preflight", timeout=1200)
    out = json.loads(proc.stdout)
    tasks = out["plays"][0]["tasks"]
    emitted = [t for t in tasks if t["task"]["name"] == "emit"]
    assert emitted, "the probe play did not finish (rc=%s): %s" % (proc.returncode, proc.stderr[-2000:])
    return emitted[0]["hosts"]["localhost"]["probe_results"], [t["task"]["name"] for t in tasks]


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_variables_fail_naming_the_variable(probe, case):
    results, _ran = probe
    assert_probe_case(results, case, CASES[case][1])


def test_probe_ran_only_validation_and_preflight(probe):
    _results, ran = probe
    role_tasks = [n.split(" : ", 1)[1] for n in ran if n.startswith("aistack.infra.nfs : ")]
    assert role_tasks
    assert all(n.startswith(("Validating arguments against arg spec", "Preflight | ")) for n in role_tasks), role_tasks


# --- Rendering -----------------------------------------------------------------------------------

TEMPLATES = ("aistack.exports", "nfs.conf", "ganesha.conf", "requires-mounts.conf")


@pytest.fixture(scope="module")
def rendered():
    """The role's templates rendered with its defaults and vars on localhost playing storage1 (server)
    with the inventory above, plus a client's mount source; {name: text}."""
    out = os.path.join(REPO, "build", "test-nfs-render")
    os.makedirs(out, exist_ok=True)
    # (no aistack_private_address here: extra vars would give every inventory host that address)
    variables = dict(SERVER, nfs_export_clients=["192.168.7.0/24"],
                     nfs_client_server="storage1", nfs_client_mounts=[{"export": "postgres", "path": "/var/lib/aistack/postgres"},
                                                                       {"export": "milvus", "path": "/var/lib/aistack/milvus"}],
                     _nfs_templates_dir=os.path.join(ROLE, "templates"))
    tasks = _inventory_tasks()
    # what the role's preflight resolves once from the inventory
    tasks.append({"name": "resolve", "ansible.builtin.set_fact": {
        "__nfs_exports": "{{ _nfs_exports_resolved }}", "__nfs_server_exports": "{{ _nfs_server_exports_resolved }}",
        "__nfs_server_address": "{{ _nfs_server_address }}"}})
    tasks += [{"name": "render " + name, "tags": ["nfs_probe"], "ansible.builtin.template": {
        "src": os.path.join(ROLE, "templates", name + ".j2"), "dest": os.path.join(out, name), "mode": "0644"}}
        for name in TEMPLATES]
    tasks.append({"name": "computed", "ansible.builtin.copy": {
        "dest": os.path.join(out, "computed.json"), "mode": "0644",
        "content": "{{ {'exports': __nfs_exports, 'server_address': __nfs_server_address} | to_json }}"}})
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
             "tasks": tasks}]
    vars_path = os.path.join(out, "extra-vars.json")
    with open(vars_path, "w", encoding="utf-8") as fh:
        json.dump(variables, fh)
    proc = run_playbook(play, "-e", "@" + vars_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    files = {}
    for name in TEMPLATES + ("computed.json",):
        with open(os.path.join(out, name), encoding="utf-8") as fh:
            files[name] = fh.read()
    return files


def test_exports_per_service_with_the_inventory_clients(rendered):
    lines = [line for line in rendered["aistack.exports"].splitlines() if line and not line.startswith("#")]
    assert len(lines) == 5
    by_path = {line.split()[0]: line.split()[1:] for line in lines}
    assert by_path["/mnt/storage/rag-data/postgres"] == [
        "10.40.0.11(rw,sync,no_subtree_check,sec=sys,root_squash)",
        "10.40.0.12(rw,sync,no_subtree_check,sec=sys,root_squash)",
        "192.168.7.0/24(rw,sync,no_subtree_check,sec=sys,root_squash)"]
    assert by_path["/mnt/storage/rag-data/milvus"][0] == "10.40.0.11(rw,sync,no_subtree_check,sec=sys,no_root_squash)"
    assert by_path["/mnt/storage/rag-data/backups"][0] == "10.40.0.11(ro,sync,no_subtree_check,sec=sys,no_root_squash)"
    assert "*" not in rendered["aistack.exports"]


def test_owners_the_containers_need(rendered):
    exports = {e["name"]: e for e in json.loads(rendered["computed.json"])["exports"]}
    assert (exports["postgres"]["owner"], exports["postgres"]["group"], exports["postgres"]["mode"]) == (999, 999, "0700")
    assert (exports["etcd"]["owner"], exports["etcd"]["mode"]) == (0, "0700")
    assert exports["backups"]["access"] == "ro"


def test_kernel_server_is_nfsv4_only_on_the_private_address(rendered):
    conf = dict(line.split("=", 1) for line in rendered["nfs.conf"].splitlines() if "=" in line and not line.startswith("#"))
    assert conf["host"] == "10.40.0.5"
    assert (conf["vers2"], conf["vers3"], conf["vers4"], conf["udp"]) == ("n", "n", "y", "n")
    assert (conf["vers4.0"], conf["vers4.1"], conf["vers4.2"]) == ("n", "y", "y")


def test_ganesha_exports(rendered):
    conf = rendered["ganesha.conf"]
    assert "Protocols = 4;" in conf and "Enable_NLM = false;" in conf and "Enable_UDP = false;" in conf
    assert "Bind_addr = 10.40.0.5;" in conf
    assert "Minor_Versions = 1, 2;" in conf
    assert conf.count("EXPORT {") == 5
    postgres = conf.split('Path = "/mnt/storage/rag-data/postgres";')[1].split("EXPORT {")[0]
    assert 'Pseudo = "/mnt/storage/rag-data/postgres";' in postgres
    assert "Squash = Root_Squash;" in postgres
    assert "Clients = 10.40.0.11, 10.40.0.12, 192.168.7.0/24;" in postgres
    assert "Access_Type = RW;" in postgres
    backups = conf.split('Path = "/mnt/storage/rag-data/backups";')[1]
    assert "Access_Type = RO;" in backups


def test_units_wait_for_the_mounts(rendered):
    assert "RequiresMountsFor=/var/lib/aistack/postgres /var/lib/aistack/milvus" in rendered["requires-mounts.conf"]
    assert json.loads(rendered["computed.json"])["server_address"] == "10.40.0.5"
