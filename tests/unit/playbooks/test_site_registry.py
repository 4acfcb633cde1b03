# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml's offline-bundle plays (issue #13) and playbooks/offline_bundle.yml's role map.

The registry host (group registry_servers) gets Docker and aistack.infra.registry before any other
play installs anything; every other host of `aistack` points apt at it (the role's client tasks)
only when the inventory sets registry_client_apt_url. offline_bundle.yml works out what a host
fetches from the roles site.yml gives its groups: the two must name the same roles. Structure is
read from the playbooks; the plays' host selection and conditions are run for real (local
connection, nothing on this machine is changed: without the URL every client task is skipped, with
an invalid one the client's own check stops it).
"""
import json
import os
import subprocess

import pytest
import yaml
from lib.ansible_run import REPO, ansible_env

BIN = os.path.join(REPO, ".venv", "bin")
CLIENT_PLAY = "Offline bundle - the other hosts install from the registry host"
SERVER_PLAY = "Offline bundle - the registry host serves it"


def load(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def role_names(play):
    return [r["role"].split(".")[-1] for r in play.get("roles", [])]


def test_registry_plays_come_before_every_service_play():
    plays = load("playbooks/site.yml")
    names = [p["name"] for p in plays]
    server, client = names.index(SERVER_PLAY), names.index(CLIENT_PLAY)
    assert plays[server]["hosts"] == "registry_servers"
    assert role_names(plays[server]) == ["docker", "registry"]
    assert client == server + 1
    assert plays[client]["hosts"] == "aistack:!registry_servers"
    # Imported, so that the play's tags reach the role's tasks (--tags base keeps the apt source).
    (task,) = plays[client]["tasks"]
    assert task["ansible.builtin.import_role"] == {"name": "aistack.infra.registry", "tasks_from": "client"}
    assert "registry_client_apt_url" in task["when"]
    assert {"base", "docker", "registry"} <= set(plays[client]["tags"])
    # Only the secrets preflight (no role, nothing installed) comes before them.
    assert server == 1 and "roles" not in plays[0]
    assert all("roles" in p for p in plays[client + 1:])


def test_offline_bundle_knows_every_role_of_site():
    """Each group's roles in site.yml are the roles offline_bundle.yml collects for that group."""
    bundle_play = load("playbooks/offline_bundle.yml")[0]
    by_group = bundle_play["vars"]["__offline_bundle_roles_by_group"]
    site = {}
    for play in load("playbooks/site.yml"):
        roles = role_names(play)
        if not roles:
            continue
        site.setdefault(play["hosts"], []).extend(roles)
    # monitoring runs on `aistack` when the inventory has monitoring_servers: the bundle's own rule.
    assert site["aistack"].pop() == "monitoring"
    assert "monitoring_servers" in bundle_play["vars"]["__offline_bundle_monitoring"]
    assert {g: sorted(r) for g, r in site.items()} == {g: sorted(r) for g, r in by_group.items()}
    # And the image and package lists have an entry for each of those roles.
    listing = next(t for t in bundle_play["tasks"] if t["name"].startswith("List the images"))["vars"]
    wanted = {r for roles in by_group.values() for r in roles} | {"monitoring"}
    assert wanted <= set(listing["images"]) and wanted <= set(listing["packages"])


def run_site(tmp_path, extra):
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": os.path.join(BIN, "python"),
                 "ansible_become": False},
        "children": {"aistack": {"hosts": {"site1": {}}}, "registry_servers": {"hosts": {}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    # Only the registry plays: the later plays' always-tagged tasks (the roles' variable loading) would
    # need the facts their plays gather under their own tags.
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           "--tags", "registry", "--skip-tags", "always",
                           os.path.join(REPO, "site.yml"), "-e", "@" + str(tmp_path / "extra.json")],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    out = json.loads(proc.stdout)
    play = next(p for p in out["plays"] if p["play"]["name"] == CLIENT_PLAY)
    results = {t["task"]["name"].split(" : ")[-1]: t["hosts"].get("site1", {}) for t in play["tasks"]}
    return proc, results


def test_client_play_does_nothing_without_a_registry(tmp_path):
    proc, results = run_site(tmp_path, {})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert results and all(r.get("skipped") for r in results.values()), results


@pytest.mark.parametrize("url", ["ftp://registry.site.lan/", "http://registry.site.lan:8080"])
def test_client_play_runs_the_client_tasks_when_a_registry_is_named(tmp_path, url):
    # An invalid URL: the client's first check runs (the import is active) and stops the host.
    proc, results = run_site(tmp_path, {"registry_client_apt_url": url})
    assert proc.returncode != 0
    check = results["Check the client settings"]
    assert check.get("failed") and "registry_client_apt_url must be" in check["msg"], check
    assert "Write the registry host's apt source" not in results
