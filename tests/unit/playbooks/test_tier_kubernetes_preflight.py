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


# -- NFS provisioner and vector indexes: bad input fails before the cluster is asked -------------------
MILVUS_DOCUMENTS = {
    "name": "documents",
    "fields": [{"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
               {"name": "embedding", "type": "FLOAT_VECTOR", "dim": 8}],
    "index": {"field": "embedding", "index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 8, "efConstruction": 32}},
}


@pytest.mark.parametrize("variables, needle", [
    ({"aistack_k8s_nfs_provisioner_enabled": True, "aistack_k8s_nfs_path": "/exports/k8s"},
     "NFS provisioner (aistack_k8s_nfs_provisioner_enabled): aistack_k8s_nfs_server is required"),
    ({"aistack_k8s_nfs_provisioner_enabled": True, "aistack_k8s_nfs_server": "nfs.aistack.internal"},
     "aistack_k8s_nfs_path is required, an absolute path of the export (got '')"),
    ({"aistack_k8s_nfs_provisioner_enabled": True, "aistack_k8s_nfs_server": "nfs.aistack.internal",
      "aistack_k8s_nfs_path": "exports/k8s", "aistack_k8s_nfs_reclaim_policy": "Recycle"},
     "(got 'exports/k8s'); aistack_k8s_nfs_reclaim_policy must be Retain or Delete (got Recycle)"),
    ({"pgvector_tables": [{"database": "analytics", "name": "documents", "dimensions": 8, "indexes": [{"method": "hnsw"}]}]},
     "Vector indexes: pgvector_tables analytics.documents: database analytics is not declared in this tier: the tier "
     "creates only rag (aistack_k8s_postgres_database)"),
    ({"pgvector_tables": [{"database": "rag", "name": "documents", "dimensions": 8,
                           "indexes": [{"method": "hnsw"}, {"column": "summary_embedding", "method": "hnsw"}]}]},
     "pgvector_tables rag.documents indexes[1]: column summary_embedding is not declared in the table (its columns: "
     "id, content, metadata, embedding)"),
    ({"milvus_collections": [dict(MILVUS_DOCUMENTS, index=dict(MILVUS_DOCUMENTS["index"], field="vector"))]},
     "milvus_collections documents: index.field vector is not a vector field declared in the collection (its vector "
     "fields: embedding)"),
])
def test_nfs_and_index_declarations_refused_before_the_cluster_is_asked(tmp_path, variables, needle):
    rc, ran, failed = run_tier(tmp_path, aistack_k8s_context="staging", **variables)
    assert rc != 0 and len(failed) == 1, failed
    assert needle in failed[0], failed
    assert "Ask the cluster for its version" not in ran


def test_index_declarations_not_checked_where_the_indexes_are_off(tmp_path):
    """aistack_k8s_index_*_enabled false (what the defaults give when the databases are not installed)."""
    rc, ran, failed = run_tier(tmp_path, aistack_k8s_context="staging", aistack_k8s_index_postgres_enabled=False,
                               aistack_k8s_index_milvus_enabled=False,
                               pgvector_tables=[{"database": "analytics", "name": "documents", "indexes": [{}]}])
    assert "Fail when a vector index is declared on something the tier does not declare" in ran
    assert not any(m.startswith("Vector indexes") for m in failed), failed


def test_nfs_objects_and_index_defaults_rendered(tmp_path):
    """What the tier applies for the NFS provisioner and where the index play connects by default."""
    play = [{"hosts": "k8s_controller", "gather_facts": False,
             "vars_files": [os.path.join(REPO, "playbooks", "vars", "tier_kubernetes.yml")],
             "tasks": [{"name": "emit", "ansible.builtin.debug": {"msg": {
                 "nfs": "{{ _aistack_k8s_nfs_objects }}", "storage_class": "{{ aistack_k8s_storage_class }}",
                 "pg": "{{ aistack_k8s_index_postgres_host }}:{{ aistack_k8s_index_postgres_port }}",
                 "pg_user": "{{ aistack_k8s_index_postgres_user }}", "milvus": "{{ aistack_k8s_index_milvus_uri }}",
                 "memory_mb": "{{ _aistack_k8s_postgres_memory_mb | int }}", "cpus": "{{ _aistack_k8s_postgres_cpus | int }}",
                 "index_pg": "{{ aistack_k8s_index_postgres_enabled | bool }}",
                 "index_milvus": "{{ aistack_k8s_index_milvus_enabled | bool }}"}}}]}]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(play))
    extra = dict(VAULT, aistack_k8s_nfs_provisioner_enabled=True, aistack_k8s_nfs_server="10.0.0.5",
                 aistack_k8s_nfs_path="/exports/k8s", aistack_image_registry="registry.aistack.internal")
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "kubernetes"),
                           str(tmp_path / "render.yml"), "-e", "@" + str(tmp_path / "extra.json")],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["k8s-controller"]["msg"]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in out["nfs"]]
    assert kinds == [("Namespace", "aistack-nfs-provisioner"), ("ServiceAccount", "aistack-nfs-provisioner"),
                     ("ClusterRole", "aistack-nfs-provisioner"), ("ClusterRoleBinding", "aistack-nfs-provisioner"),
                     ("Role", "aistack-nfs-provisioner-leader"), ("RoleBinding", "aistack-nfs-provisioner-leader"),
                     ("Deployment", "aistack-nfs-provisioner"), ("StorageClass", "aistack-nfs")]
    objects = {o["kind"]: o for o in out["nfs"]}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.aistack.internal/sig-storage/nfs-subdir-external-provisioner:v4.0.2"
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "PROVISIONER_NAME": "aistack.io/nfs-subdir-external-provisioner", "NFS_SERVER": "10.0.0.5", "NFS_PATH": "/exports/k8s"}
    assert container["volumeMounts"] == [{"name": "nfs-export", "mountPath": "/persistentvolumes"}]
    assert pod["volumes"] == [{"name": "nfs-export", "nfs": {"server": "10.0.0.5", "path": "/exports/k8s"}}]
    assert objects["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    rules = {r["resources"][0]: r["verbs"] for r in objects["ClusterRole"]["rules"]}
    assert rules["persistentvolumes"] == ["get", "list", "watch", "create", "delete"]
    assert rules["persistentvolumeclaims"] == ["get", "list", "watch", "update"]
    sc = objects["StorageClass"]
    assert sc["provisioner"] == "aistack.io/nfs-subdir-external-provisioner" and sc["reclaimPolicy"] == "Retain"
    assert sc["parameters"] == {"archiveOnDelete": "true"}
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "false"}
    assert "mountOptions" not in sc  # none given: the nodes' defaults (an empty list is not sent)
    # The databases use the NFS class; the index play reaches the Services by their names in the cluster.
    assert out["storage_class"] == "aistack-nfs"
    assert out["pg"] == "rag-pg-rw.rag-production.svc.cluster.local:5432" and out["pg_user"] == "rag_app"
    assert out["milvus"] == "http://milvus.rag-production.svc.cluster.local:19530"
    assert (out["memory_mb"], out["cpus"]) == (8192, 4)
    assert out["index_pg"] is True and out["index_milvus"] is True
