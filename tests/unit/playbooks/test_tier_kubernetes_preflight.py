"""playbooks/tier_kubernetes.yml's preflight without a cluster: what fails before any API call.

Against a real API server (context, storage class, chart schema, check mode, idempotence):
tests/integration/test_k8s_chart.py."""
import json
import os
import subprocess

import pytest

from lib.ansible_run import REPO, ansible_env


def run_tier(tmp_path, extra_env=None, **variables):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "staging",
        "clusters": [{"name": "staging", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "staging", "user": {}}],
        "contexts": [{"name": "staging", "context": {"cluster": "staging", "user": "staging"}}]}))
    extra = {"aistack_k8s_kubeconfig": str(kubeconfig)}
    extra.update(variables)
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "kubernetes"),
                           os.path.join(REPO, "playbooks", "tier_kubernetes.yml"), "-e", "@" + str(tmp_path / "extra.json")],
                          env=ansible_env(extra_env), capture_output=True, text=True, timeout=300, cwd=REPO)
    out = json.loads(proc.stdout)
    ran = [task["task"]["name"] for play in out["plays"] for task in play["tasks"]]
    failed = [h.get("msg", "") for play in out["plays"] for task in play["tasks"] for h in task["hosts"].values()
              if h.get("failed")]
    return proc.returncode, ran, failed


@pytest.mark.parametrize("variables, needle", [
    ({}, "aistack_k8s_context: context rag-production is not in"),
    ({"aistack_k8s_kubeconfig": "/nonexistent/kubeconfig"}, "aistack_k8s_kubeconfig: /nonexistent/kubeconfig cannot be read"),
    ({"aistack_k8s_context": "staging", "aistack_k8s_namespace": "RAG_Production"}, "aistack_k8s_namespace must be a DNS label"),
    ({"aistack_k8s_context": "staging", "aistack_k8s_ai_values": {"autoscaling": {"enabled": True, "minReplicas": 0}}},
     "aistack_k8s_ai_values.autoscaling.minReplicas"),
])
def test_preflight_fails_before_the_cluster_is_asked(tmp_path, variables, needle):
    rc, ran, failed = run_tier(tmp_path, **variables)
    assert rc != 0 and len(failed) == 1
    assert needle in failed[0], failed
    assert "Ask the cluster for its version" not in ran


def test_chart_values_refused_before_the_cluster_is_asked(tmp_path, k8s_helm):
    """The chart's values.schema.json (real helm, lab/artifacts/k8s/build.sh helm) refuses the values."""
    helm_dirs = {name: str(tmp_path / name.lower()) for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    rc, ran, failed = run_tier(tmp_path, extra_env=helm_dirs, aistack_k8s_context="staging", aistack_k8s_helm_binary=k8s_helm,
                               aistack_k8s_ai_values={"ingress": {"enabled": True, "host": "ai.example", "path": "/",
                                                                  "tlsSecretName": "Not_A_Name"}})
    assert rc != 0 and len(failed) == 1
    assert failed[0].startswith("aistack_k8s_ai_values: charts/ai-service refuses these values"), failed
    assert "/ingress/tlsSecretName" in failed[0]
    assert "Ask the cluster for its version" not in ran
