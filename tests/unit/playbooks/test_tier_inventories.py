# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inventories/single and inventories/split with playbooks/tier_single.yml and tier_split.yml.

Real ansible-inventory / ansible / ansible-playbook runs on copies of the two inventories in which
every host is this machine (local connection), so that each tier's preflight play gathers real
facts and runs each role's own preflight. Nothing but the preflight runs (--tags tier_preflight);
that the preflight is the first play of each tier and stops every host on a failure is checked on
the playbooks themselves. molecule `split` runs the split tier for real on three lab hosts.
"""
import json
import os
import shutil
import subprocess

import pytest
import yaml
from lib.ansible_run import REPO, ansible_env

SECRETS = {
    "vault_admin_ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnlyForUnitTests test@example",
    "vault_pgvector_superuser_password": "unit-Super-9c1f0a2b7e",
    "vault_pgvector_rag_app_password": "unit-RagApp-5e2d7c0b1a",
    "vault_milvus_root_password": "unit-Root-4b8e1d2c6f",
    "vault_milvus_minio_access_key": "unit-minio",
    "vault_milvus_minio_secret_key": "unit-MinioSecret-7a3c",
    # This machine has no 'admin' account (the base role creates it on a real host).
    "docker_users": [],
}
BIN = os.path.join(REPO, ".venv", "bin")


def local_inventory(tmp_path, tier, edit=None):
    """A copy of inventories/<tier> whose hosts all connect locally; edit(hosts_dict) may change it."""
    dest = tmp_path / tier
    shutil.copytree(os.path.join(REPO, "inventories", tier, "group_vars"), dest / "group_vars")
    with open(os.path.join(REPO, "inventories", tier, "hosts.yml"), encoding="utf-8") as fh:
        hosts = yaml.safe_load(fh)
    hosts["all"].setdefault("vars", {}).update({
        "ansible_connection": "local", "ansible_python_interpreter": os.path.join(BIN, "python"),
        "ansible_become": False})
    if edit:
        edit(hosts)
    (dest / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return str(dest)


def run_preflight(tmp_path, tier, edit=None, **variables):
    inventory = local_inventory(tmp_path, tier, edit)
    extra = dict(SECRETS)
    extra.update(variables)
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, "--tags", "tier_preflight",
                           os.path.join(REPO, "playbooks", "tier_%s.yml" % tier), "-e", "@" + str(tmp_path / "extra.json")],
                          env=ansible_env(), capture_output=True, text=True, timeout=600, cwd=REPO)
    out = json.loads(proc.stdout)
    # The plays that ran a task besides fact gathering and the roles' always-tagged variable loading
    # and preflights, and the tasks that reported a change.
    plays = [play["play"]["name"] for play in out["plays"]
             if any(not h.get("skipped") and task["task"]["name"] != "Gathering Facts"
                    and "Validating arguments against arg spec" not in task["task"]["name"]
                    and not (task["task"].get("path") or "").split(":")[0].endswith(("/preflight.yml", "/main.yml"))
                    for task in play["tasks"] for h in task["hosts"].values())]
    changed = [task["task"]["name"] for play in out["plays"] for task in play["tasks"]
               for h in task["hosts"].values() if h.get("changed")]
    assert not changed, changed
    failed = [r.get("msg", "") for play in out["plays"] for task in play["tasks"] for h in task["hosts"].values()
              if h.get("failed") for r in (h.get("results") or [h]) if r.get("failed")]
    return proc.returncode, plays, failed, proc


def hostvar(tier, host, expression):
    """The value of a Jinja expression for one host of the (unmodified) inventory."""
    proc = subprocess.run([os.path.join(BIN, "ansible"), "-i", os.path.join(REPO, "inventories", tier), host,
                           "-m", "ansible.builtin.debug", "-a", "msg={{ %s }}" % expression, "-e", json.dumps(SECRETS)],
                          env=ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}), capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]["msg"]


def graph(tier):
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", os.path.join(REPO, "inventories", tier), "--list"],
                          env=ansible_env(), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)

    def members(group):
        g = data.get(group, {})
        out = list(g.get("hosts", []))
        for child in g.get("children", []):
            out += members(child)
        return sorted(set(out))
    return members


def test_split_inventory_groups():
    members = graph("split")
    assert members("api_servers") == ["api1.example.com", "api2.example.com"]
    assert members("milvus_servers") == ["milvus1.example.com"]
    assert members("postgres_servers") == ["pg1.example.com"]
    assert members("storage_servers") == ["storage1.example.com"]
    # site.yml's and deploy_service.yml's groups name the same hosts.
    assert members("web_servers") == members("api_servers")
    assert members("pgvector_servers") == members("postgres_servers")
    assert len(members("aistack")) == 5


def test_single_inventory_groups():
    members = graph("single")
    for group in ("api_servers", "milvus_servers", "postgres_servers", "web_servers", "pgvector_servers", "aistack"):
        assert members(group) == ["ai1.example.com"], group
    assert members("storage_servers") == ["storage1.example.com"]


def test_split_wiring_comes_from_the_inventory():
    """The API hosts' database addresses, the firewall and pg_hba allow-lists are the inventory's hosts."""
    url = hostvar("split", "api1.example.com", "bluegreen_secret_env.DATABASE_URL")
    assert url == "postgresql://rag_app:unit-RagApp-5e2d7c0b1a@10.20.0.41:5432/rag"
    assert hostvar("split", "api2.example.com", "bluegreen_env.MILVUS_URI") == "http://10.20.0.31:19530"
    assert hostvar("split", "pg1.example.com", "pgvector_hba_allowed_networks") == ["10.20.0.21/32", "10.20.0.22/32"]
    assert hostvar("split", "pg1.example.com", "pgvector_bind_address") == "10.20.0.41"
    assert hostvar("split", "milvus1.example.com", "milvus_bind_address") == "10.20.0.31"
    assert hostvar("split", "pg1.example.com", "docker_firewall_rules") == [
        {"port": 5432, "proto": "tcp", "groups": ["api_servers"], "comment": "postgres"}]
    assert [r["port"] for r in hostvar("split", "milvus1.example.com", "docker_firewall_rules")] == [19530, 9091]
    assert hostvar("split", "api1.example.com", "docker_firewall_rules") == []
    assert hostvar("split", "pg1.example.com", "nfs_client_mounts") == [
        {"export": "backups", "path": "/mnt/storage/rag-data/backups"}]
    assert hostvar("split", "milvus1.example.com", "milvus_authorization_enabled") is True
    # Backups: sets on the storage server's backups export, which the database hosts may write.
    assert hostvar("split", "storage1.example.com", "[pgvector_backup_dir, milvus_backup_dir,"
                   " (nfs_exports | selectattr('name', 'equalto', 'backups') | first).access]") == [
        "/mnt/storage/rag-data/backups/postgres", "/mnt/storage/rag-data/backups/milvus", "rw"]


def test_single_data_on_the_nfs_mount():
    host = "ai1.example.com"
    mounts = hostvar("single", host, "nfs_client_mounts")
    assert [m["path"] for m in mounts] == ["/mnt/storage/rag-data/" + n for n in ("milvus", "postgres", "etcd", "minio", "backups")]
    assert hostvar("single", host, "pgvector_data_path") == "/mnt/storage/rag-data/postgres"
    assert hostvar("single", host, "[milvus_data_path, milvus_etcd_data_path, milvus_minio_data_path]") == [
        "/mnt/storage/rag-data/milvus", "/mnt/storage/rag-data/etcd", "/mnt/storage/rag-data/minio"]
    assert hostvar("single", host, "nfs_client_services") == ["docker.service"]
    assert hostvar("single", host, "bluegreen_secret_env.DATABASE_URL").endswith("@aistack-pgvector:5432/rag")


def test_same_variable_names_across_tiers():
    """Moving tier is an inventory change: both tiers set the same variables."""
    names = {}
    for tier in ("single", "split"):
        with open(os.path.join(REPO, "inventories", tier, "group_vars", "all", "main.yml"), encoding="utf-8") as fh:
            names[tier] = set(yaml.safe_load(fh))
    assert names["single"] - names["split"] == {"pgvector_data_path", "milvus_data_path", "milvus_etcd_data_path",
                                                "milvus_minio_data_path", "bluegreen_extra_networks", "nfs_client_services"}
    # The load balancer in front of several API hosts exists in the split tier only.
    assert names["split"] - names["single"] == {"aistack_lb_upstream_name", "aistack_lb_backend_port", "aistack_lb_drain_seconds"}


@pytest.mark.parametrize("tier", ["single", "split"])
def test_preflight_is_first_and_stops_every_host(tier):
    with open(os.path.join(REPO, "playbooks", "tier_%s.yml" % tier), encoding="utf-8") as fh:
        plays = yaml.safe_load(fh)
    assert plays[0]["hosts"] == "all" and plays[0]["any_errors_fatal"] is True
    assert "tier_preflight" in plays[0]["tags"] and "always" in plays[0]["tags"]
    assert all("tier_preflight" not in play.get("tags", []) for play in plays[1:])


@pytest.mark.parametrize("tier", ["single", "split"])
def test_preflight_passes_on_the_example_inventory(tmp_path, tier):
    rc, plays, failed, proc = run_preflight(tmp_path, tier)
    assert rc == 0 and not failed, (failed, proc.stdout[-3000:])
    assert len(plays) == 1 and "preflight" in plays[0]


def _drop_group(group):
    def edit(hosts):
        for parent in ("aistack",):
            hosts["all"]["children"][parent]["children"].pop(group)
    return edit


def _add_lb(hosts):
    hosts["all"]["children"]["aistack"]["children"]["lb_servers"] = {
        "hosts": {"lb1.example.com": {"ansible_host": "203.0.113.11", "aistack_private_address": "10.20.0.11"}}}


def _no_address(hosts):
    del hosts["all"]["children"]["aistack"]["children"]["postgres_servers"]["hosts"]["pg1.example.com"]["aistack_private_address"]


@pytest.mark.parametrize("edit, variables, needle", [
    (_drop_group("milvus_servers"), {}, "'milvus_servers' (Milvus standalone, etcd and object storage)"),
    (_no_address, {}, "Set aistack_private_address of pg1.example.com"),
    (None, {"vault_milvus_minio_secret_key": ""}, "Required variable 'vault_milvus_minio_secret_key'"),
    (None, {"milvus_object_storage": "s3", "milvus_s3_endpoint": "s3.example.com", "milvus_s3_bucket": "rag"}, "milvus_s3_access_key"),
    (_add_lb, {"aistack_lb_backend_port": 0}, "aistack_lb_backend_port (the API hosts' HTTPS port"),
    (_add_lb, {"aistack_lb_upstream_name": "api servers"}, "set aistack_lb_upstream_name"),
    (None, {"docker_firewall_controller_addresses": ["192.0.2.10"],
            "docker_firewall_rules": [{"port": 22, "proto": "tcp", "groups": ["api_servers"]}]}, "would lock out SSH"),
])
def test_split_preflight_refuses_bad_input(tmp_path, edit, variables, needle):
    rc, plays, failed, proc = run_preflight(tmp_path, "split", edit, **variables)
    assert rc != 0, proc.stdout[-2000:]
    assert any(needle in msg for msg in failed), failed
    assert len(plays) == 1


def test_split_preflight_passes_with_a_load_balancer(tmp_path):
    rc, plays, failed, proc = run_preflight(tmp_path, "split", _add_lb)
    assert rc == 0 and not failed, (failed, proc.stdout[-3000:])


@pytest.mark.parametrize("down", [[], ["api1.example.com"]])
def test_load_balancer_upstream_lists_every_api_host(tmp_path, down):
    """playbooks/templates/lb_upstream.conf.j2 as the tier writes it: every API host's private
    address on the backend port, the one being released marked down."""
    inventory = local_inventory(tmp_path, "split", _add_lb)
    out = tmp_path / "upstream.conf"
    play = [{"hosts": "lb1.example.com", "gather_facts": False, "vars": {"_aistack_lb_down": down}, "tasks": [
        {"name": "render", "ansible.builtin.template": {
            "src": os.path.join(REPO, "playbooks", "templates", "lb_upstream.conf.j2"), "dest": str(out), "mode": "0644"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, str(tmp_path / "play.yml"),
                           "-e", json.dumps(SECRETS)], env=ansible_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:]
    servers = [line.strip() for line in out.read_text().splitlines() if line.strip().startswith("server ")]
    assert servers == ["server 10.20.0.21:443%s;" % (" down" if down else ""), "server 10.20.0.22:443;"]
    assert "upstream aistack-api {" in out.read_text()
