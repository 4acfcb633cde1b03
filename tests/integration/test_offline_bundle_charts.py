"""playbooks/offline_bundle.yml's Helm charts (tag charts) for the Kubernetes tier's inventory.

What is real: helm 3 (built by lab/artifacts/k8s/build.sh; skipped, naming it, where it is not
cached), `helm package` of the collection's charts/ai-service, and kubernetes.core.helm_pull from a
real chart repository (index.yaml made by `helm repo index`) served over HTTP on 127.0.0.1. The
official repositories are not reachable here: that repository stands in for Milvus's, with a
copy of charts/ai-service renamed to milvus 4.2.56-test; the CloudNativePG operator is left out
(aistack_k8s_postgres_install=false), so the bundle holds exactly two charts.
"""
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest
import yaml

from lib.ansible_run import REPO, ansible_env

CHART = os.path.join(REPO, "charts", "ai-service")
PLAYBOOK = os.path.join(REPO, "playbooks", "offline_bundle.yml")
INVENTORY = os.path.join(REPO, "inventories", "kubernetes")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def chart_meta(path):
    with open(os.path.join(path, "Chart.yaml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def chart_repo(k8s_helm, tmp_path_factory):
    """A chart repository on 127.0.0.1 holding "milvus" 4.2.56-test (a renamed copy of charts/ai-service)."""
    base = tmp_path_factory.mktemp("chart-repo")
    env = dict(os.environ, HELM_CACHE_HOME=str(base / "helm" / "cache"), HELM_CONFIG_HOME=str(base / "helm" / "config"),
               HELM_DATA_HOME=str(base / "helm" / "data"))
    src = base / "src" / "milvus"
    shutil.copytree(CHART, src)
    meta = chart_meta(src)
    meta.update(name="milvus", version="4.2.56-test")
    (src / "Chart.yaml").write_text(yaml.safe_dump(meta))
    repo = base / "repo"
    repo.mkdir()
    subprocess.run([k8s_helm, "package", str(src), "--destination", str(repo)], env=env, check=True, capture_output=True)

    # python -m http.server's handler, on loopback, serving the repository's folder.
    handler = functools.partial(QuietHandler, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = "http://127.0.0.1:%d/" % server.server_address[1]
    subprocess.run([k8s_helm, "repo", "index", str(repo), "--url", url], env=env, check=True, capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": url, "env": env, "helm": k8s_helm, "base": base}
    finally:
        server.shutdown()
        server.server_close()


def run_charts(repo, bundle):
    extra = {
        "offline_bundle_dir": str(bundle),
        "offline_bundle_helm_binary": repo["helm"],
        "aistack_k8s_milvus_chart_ref": "milvus",
        "aistack_k8s_milvus_chart_repo_url": repo["url"],
        "aistack_k8s_milvus_chart_version": "4.2.56-test",
        "aistack_k8s_postgres_install": False,
    }
    path = repo["base"] / "extra.json"
    path.write_text(json.dumps(extra))
    helm_env = {k: repo["env"][k] for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", INVENTORY, PLAYBOOK,
                           "--tags", "charts", "-e", "@" + str(path)],
                          env=ansible_env(helm_env), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_charts_collected_listed_and_idempotent(chart_repo, tmp_path):
    bundle = tmp_path / "bundle"
    run_charts(chart_repo, bundle)
    own = chart_meta(CHART)
    expected = {"ai-service-%s.tgz" % own["version"]: ("ai-service", str(own["version"])),
                "milvus-4.2.56-test.tgz": ("milvus", "4.2.56-test")}
    charts = bundle / "charts"
    assert sorted(os.listdir(charts)) == sorted(expected)
    for name, (chart, version) in expected.items():
        shown = yaml.safe_load(subprocess.run([chart_repo["helm"], "show", "chart", str(charts / name)], env=chart_repo["env"],
                                              check=True, capture_output=True, text=True).stdout)
        assert (shown["name"], str(shown["version"])) == (chart, version)

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["helm_charts"]) == {"charts/" + n for n in expected}
    for name, (chart, version) in expected.items():
        entry = manifest["helm_charts"]["charts/" + name]
        assert (entry["name"], entry["version"]) == (chart, version)
        assert manifest["sha256"]["charts/" + name] == sha256(charts / name)
    assert manifest["helm_charts"]["charts/milvus-4.2.56-test.tgz"]["source"] == chart_repo["url"] + " milvus"
    # Only the charts part ran: no image, Debian or Python entry is invented.
    assert "image_ids" not in manifest and "debian_packages" not in manifest

    before = {n: sha256(charts / n) for n in expected}
    manifest_before = (bundle / "manifest.json").read_text()
    second = run_charts(chart_repo, bundle)
    assert all(h["changed"] == 0 and h["failures"] == 0 for h in second["stats"].values()), second["stats"]
    assert {n: sha256(charts / n) for n in expected} == before
    assert (bundle / "manifest.json").read_text() == manifest_before
