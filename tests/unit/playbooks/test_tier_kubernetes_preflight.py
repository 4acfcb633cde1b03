"""playbooks/tier_kubernetes.yml's preflight without a cluster: what fails before any API call.

Against a real API server (context, storage class, chart schema, check mode, idempotence):
tests/integration/test_k8s_chart.py."""
import json
import os
import subprocess

import jsonschema
import pytest
import yaml

from lib.ansible_run import REPO, ansible_env
from lib.k8s_tier import VAULT

SCHEMAS = os.path.join(REPO, "playbooks", "schemas")


def run_tier(tmp_path, extra_env=None, vault=True, **variables):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "staging",
        "clusters": [{"name": "staging", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "staging", "user": {}}],
        "contexts": [{"name": "staging", "context": {"cluster": "staging", "user": "staging"}}]}))
    extra = dict(VAULT) if vault else {}
    extra["aistack_k8s_kubeconfig"] = str(kubeconfig)
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


@pytest.mark.parametrize("missing", ["vault_k8s_postgres_app_password", "vault_k8s_object_storage_secret_key"])
def test_missing_vault_secret_fails_first(tmp_path, missing):
    variables = {k: v for k, v in VAULT.items() if k != missing}
    rc, ran, failed = run_tier(tmp_path, vault=False, aistack_k8s_context="staging", **variables)
    assert rc != 0 and len(failed) == 1, failed
    assert "Required variable '%s' is missing, empty or a placeholder" % missing in failed[0], failed
    assert "Read the kubeconfig" not in ran and "Ask the cluster for its version" not in ran


def test_placeholder_vault_secret_refused(tmp_path):
    rc, ran, failed = run_tier(tmp_path, aistack_k8s_context="staging", vault_k8s_milvus_root_password="changeme")
    assert rc != 0 and "Required variable 'vault_k8s_milvus_root_password'" in failed[0], failed


def rendered(tmp_path, **variables):
    """The Milvus values and CloudNativePG definitions the tier computes from inventories/kubernetes
    (playbooks/vars/tier_kubernetes.yml, the file both of the tier's plays read)."""
    play = [{"hosts": "k8s_controller", "gather_facts": False,
             "vars_files": [os.path.join(REPO, "playbooks", "vars", "tier_kubernetes.yml")],
             "tasks": [{"name": "emit", "ansible.builtin.debug": {"msg": {
                 "milvus": "{{ _aistack_k8s_milvus_values }}", "cluster": "{{ _aistack_k8s_postgres_cluster }}",
                 "pooler": "{{ _aistack_k8s_postgres_pooler }}"}}}]}]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(play))
    extra = dict(VAULT, **variables)
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "kubernetes"),
                           str(tmp_path / "render.yml"), "-e", "@" + str(tmp_path / "extra.json")],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["k8s-controller"]["msg"]


def schema(name):
    with open(os.path.join(SCHEMAS, name)) as fh:
        return json.load(fh)


def test_milvus_and_cnpg_rendered_values_match_our_schemas(tmp_path):
    """Rendered only: the official charts are not reachable. The schemas are ours, from their documentation."""
    out = rendered(tmp_path)
    milvus, cluster, pooler = out["milvus"], out["cluster"], out["pooler"]
    jsonschema.Draft7Validator(schema("milvus-values.schema.json")).validate(milvus)
    jsonschema.Draft7Validator(schema("cnpg-cluster.schema.json")).validate(cluster)
    jsonschema.Draft7Validator(schema("cnpg-pooler.schema.json")).validate(pooler)
    # The seed's replica counts, in cluster mode, with authentication on and the logpipeline's Kafka.
    assert milvus["cluster"] == {"enabled": True}
    assert {c: milvus[c]["replicas"] for c in ("queryNode", "dataNode", "indexNode")} == {
        "queryNode": 3, "dataNode": 3, "indexNode": 2}
    assert yaml.safe_load(milvus["extraConfigFiles"]["user.yaml"])["common"]["security"]["authorizationEnabled"] is True
    assert milvus["externalKafka"]["enabled"] is True and milvus["pulsarv3"]["enabled"] is False
    assert milvus["externalKafka"]["sasl"]["password"] == VAULT["vault_k8s_milvus_kafka_password"]
    assert milvus["minio"] == {"enabled": False} and milvus["externalS3"]["secretKey"] == VAULT["vault_k8s_object_storage_secret_key"]
    assert milvus["labels"] == {"aistack.io/tier": "database"}  # the network policy's database selector
    assert milvus["queryNode"]["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    # PostgreSQL HA: a primary and two standbys, pgvector created at bootstrap, a PgBouncer pooler.
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"] == ["CREATE EXTENSION IF NOT EXISTS vector"]
    assert cluster["spec"]["bootstrap"]["initdb"]["secret"] == {"name": "ai-service-postgres"}
    assert cluster["spec"]["inheritedMetadata"]["labels"] == {"aistack.io/tier": "database"}
    assert pooler["spec"] == {"cluster": {"name": "rag-pg"}, "instances": 2, "type": "rw",
                              "pgbouncer": {"poolMode": "transaction",
                                            "parameters": {"max_client_conn": "1000", "default_pool_size": "25"}}}
    # Pulsar instead of Kafka: the chart's Pulsar 3 on, no external Kafka.
    pulsar = rendered(tmp_path, aistack_k8s_milvus_message_queue="pulsar")["milvus"]
    jsonschema.Draft7Validator(schema("milvus-values.schema.json")).validate(pulsar)
    assert pulsar["externalKafka"] == {"enabled": False} and pulsar["pulsarv3"]["enabled"] is True


@pytest.mark.parametrize("variables, needle", [
    ({"aistack_k8s_milvus_replicas": {"proxy": 2, "queryNode": 0, "dataNode": 3, "indexNode": 2}},
     "aistack_k8s_milvus_* values at queryNode.replicas: 0 is less than the minimum of 1"),
    ({"aistack_k8s_milvus_image_tag": "v2.6.0"}, "aistack_k8s_milvus_* values at image.all.tag"),
    ({"aistack_k8s_postgres_instances": 0},
     "aistack_k8s_postgres_* CloudNativePG definition at spec.instances: 0 is less than the minimum of 1"),
    ({"vault_k8s_object_storage_secret_key": "short-1"},
     "aistack_k8s_milvus_* values at externalS3.secretKey: minLength not met (value hidden)"),
])
def test_milvus_and_cnpg_values_refused_before_the_cluster_is_asked(tmp_path, variables, needle):
    rc, ran, failed = run_tier(tmp_path, aistack_k8s_context="staging", **variables)
    assert rc != 0 and len(failed) == 1, failed
    assert needle in failed[0], failed
    assert "short-1" not in failed[0]  # a secret is named, never printed
    assert "Ask the cluster for its version" not in ran
