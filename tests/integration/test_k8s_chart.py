"""The collection's ai-service Helm chart on a real Kubernetes API server (tests/lib/k8s_control_plane.py).

What is real: etcd, kube-apiserver (admission, validation, RBAC), kube-controller-manager
(Deployment -> ReplicaSet -> Pods, HPA, PDB status) and kube-scheduler, helm 3 and
kubernetes.core.helm run through ansible-playbook. What is simulated: the nodes and the pods'
containers (kwok reports scheduled pods Running and Ready; no image is pulled or run).

Without the helm-diff plugin (the module proxy refuses it), kubernetes.core.helm decides whether
to upgrade by comparing the release's values, chart name-version and appVersion only; the
second-run test below proves changed=0 on that path, and says so. The tier playbook adds the
sha256 of the rendered manifests to the release's values (aistackRenderedSha256), so that a
template change without a chart version bump is upgraded and reported (tested below).
"""
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from lib.ansible_run import REPO, ansible_env, run_playbook
from lib.k8s_tier import VAULT

CHART = os.path.join(REPO, "charts", "ai-service")
NAMESPACE = "aistack-chart-test"
RELEASE = "ai"
FULLNAME = "ai-ai-service"


@pytest.fixture(scope="module")
def k8s(k8s_control_plane, tmp_path_factory):
    """The control plane plus an environment in which helm uses only this test's directories."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update({
        "PATH": k8s_control_plane["bin"] + os.pathsep + env.get("PATH", ""),
        "KUBECONFIG": k8s_control_plane["kubeconfig"],
        "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    })
    info = dict(k8s_control_plane, env=env, helm=os.path.join(k8s_control_plane["bin"], "helm"))
    return info


@pytest.fixture(scope="module")
def helm_only(k8s_helm, tmp_path_factory):
    """helm alone (no cluster): for lint and render tests, which then run even where the control plane is not built."""
    home = tmp_path_factory.mktemp("helm-only-home")
    env = dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"))
    return {"helm": k8s_helm, "env": env}


def helm(k8s, *args, check=True):
    proc = subprocess.run([k8s["helm"]] + list(args), env=k8s["env"], capture_output=True, text=True, timeout=180)
    if check:
        assert proc.returncode == 0, "helm %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc


def api(k8s, path, method="GET", body=None):
    """``method`` ``path`` as the admin with a plain HTTPS client (independent of helm and the module); None on 404."""
    with open(k8s["kubeconfig"]) as fh:
        user = json.load(fh)["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=k8s["ca_file"])
    ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    req = urllib.request.Request(k8s["server"] + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def wait_for(what, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out after %d s waiting for %s (last: %r)" % (timeout, what, value))


def helm_task(k8s, values, **extra):
    task = {"chart_ref": CHART, "release_name": RELEASE, "release_namespace": NAMESPACE, "create_namespace": True,
            "kubeconfig": k8s["kubeconfig"], "binary_path": k8s["helm"], "values": values, "wait": True,
            "wait_timeout": "120s"}
    task.update(extra)
    return task


def run_helm_module(k8s, values, check=False, **extra):
    """kubernetes.core.helm through ansible-playbook; returns (rc, the task's result, stdout)."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "release the chart", "kubernetes.core.helm": helm_task(k8s, values, **extra), "register": "r",
         "ignore_errors": True},
        {"name": "emit", "ansible.builtin.debug": {"var": "r"}}]}]
    proc = run_playbook(play, *(["--check"] if check else []),
                        extra_env={"HELM_CACHE_HOME": k8s["env"]["HELM_CACHE_HOME"],
                                   "HELM_CONFIG_HOME": k8s["env"]["HELM_CONFIG_HOME"],
                                   "HELM_DATA_HOME": k8s["env"]["HELM_DATA_HOME"]}, timeout=300)
    try:
        tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
        result = [t for t in tasks if t["task"]["name"] == "emit"][0]["hosts"]["localhost"]["r"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("the play did not finish (rc %s): %s %s" % (proc.returncode, proc.stdout[-3000:],
                                                                         proc.stderr[-2000:]))
    return result, proc.stdout


def values(tag="1.0.0", **overrides):
    doc = {"image": {"repository": "registry.aistack.internal/aistack/demo-ai-service", "tag": tag},
           "ingress": {"host": "ai.aistack.internal", "tlsSecretName": "ai-aistack-internal-tls"}}
    doc.update(overrides)
    return doc


def deployment(k8s):
    return api(k8s, "/apis/apps/v1/namespaces/%s/deployments/%s" % (NAMESPACE, FULLNAME))


def replicasets(k8s):
    items = api(k8s, "/apis/apps/v1/namespaces/%s/replicasets?labelSelector=app.kubernetes.io/instance%%3D%s"
                % (NAMESPACE, RELEASE))["items"]
    return {rs["metadata"]["labels"]["pod-template-hash"]: rs for rs in items}


def rolled_out(k8s, tag):
    """The Deployment's current generation is rolled out with every wanted replica on ``tag``."""
    dep = deployment(k8s)
    status, spec = dep.get("status", {}), dep["spec"]
    return (status.get("observedGeneration") == dep["metadata"]["generation"]
            and spec["template"]["spec"]["containers"][0]["image"].endswith(":" + tag)
            and status.get("updatedReplicas") == spec["replicas"] == status.get("readyReplicas")
            == status.get("availableReplicas") and status.get("replicas") == spec["replicas"]) and dep


def test_helm_lint_and_schema(helm_only, tmp_path):
    k8s = helm_only
    proc = helm(k8s, "lint", "--strict", CHART)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    rendered = list(yaml.safe_load_all(helm(k8s, "template", RELEASE, CHART, "--namespace", NAMESPACE).stdout))
    kinds = sorted(doc["kind"] for doc in rendered if doc)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "Ingress", "PodDisruptionBudget", "Service"]
    bad = tmp_path / "bad.yaml"
    for case, doc, needle in (
            ("replicas 0", {"replicaCount": 0, "autoscaling": {"enabled": False}}, "replicaCount"),
            ("maxUnavailable 1", {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}, "maxUnavailable"),
            ("root", {"podSecurityContext": {"runAsNonRoot": False, "runAsUser": 0}}, "runAsNonRoot"),
            ("min above max", {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2,
                                               "targetCPUUtilizationPercentage": 70}}, "minReplicas")):
        bad.write_text(yaml.safe_dump(doc))
        proc = helm(k8s, "template", RELEASE, CHART, "-f", str(bad), check=False)
        assert proc.returncode != 0, "helm accepted %s" % case
        assert needle in proc.stderr, (case, proc.stderr)


def test_bad_values_refused_before_anything_is_applied(k8s):
    result, _out = run_helm_module(k8s, values(replicaCount=0, autoscaling={
        "enabled": False, "minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 70}))
    assert result["failed"], result
    assert "replicaCount" in result["msg"] + result.get("stderr", ""), result
    assert "minimum" in result.get("stderr", "") + result["msg"], result  # helm 3.22: "at '/replicaCount': minimum: got 0, want 1"
    assert helm(k8s, "list", "-a", "-n", NAMESPACE, "-o", "json").stdout.strip() in ("[]", "")
    assert deployment(k8s) is None


def test_install_upgrade_rollback_idempotence(k8s):
    # Check mode: nothing is installed.
    result, _out = run_helm_module(k8s, values(), check=True)
    assert not result["failed"] and result["changed"], result
    assert deployment(k8s) is None

    # Install: every object accepted by the real API server, pods scheduled on the kwok nodes.
    started = time.monotonic()
    result, _out = run_helm_module(k8s, values())
    assert not result["failed"] and result["changed"], result
    assert result["status"]["revision"] == "1" or result["status"]["revision"] == 1, result["status"]
    dep = wait_for("the first rollout", lambda: rolled_out(k8s, "1.0.0"))
    spec = dep["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    # The HPA owns the replica count: the real controller raised it from 1 to minReplicas (2).
    hpa = api(k8s, "/apis/autoscaling/v2/namespaces/%s/horizontalpodautoscalers/%s" % (NAMESPACE, FULLNAME))
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["scaleTargetRef"]["name"] == FULLNAME
    wait_for("the HPA to scale to minReplicas", lambda: (rolled_out(k8s, "1.0.0") or {}).get("spec", {}).get("replicas") == 2)
    pdb = api(k8s, "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s" % (NAMESPACE, FULLNAME))
    assert pdb["spec"]["maxUnavailable"] == 1
    wait_for("the PDB controller's status", lambda: api(k8s, "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s"
                                                         % (NAMESPACE, FULLNAME)).get("status", {}).get("expectedPods") == 2)
    ing = api(k8s, "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s" % (NAMESPACE, FULLNAME))
    assert ing["spec"]["tls"] == [{"hosts": ["ai.aistack.internal"], "secretName": "ai-aistack-internal-tls"}]
    svc = api(k8s, "/api/v1/namespaces/%s/services/%s" % (NAMESPACE, FULLNAME))
    assert svc["spec"]["clusterIP"]  # allocated by the API server from the service range
    pods = api(k8s, "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io/instance%%3D%s" % (NAMESPACE, RELEASE))
    running = [p for p in pods["items"] if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")]
    assert len(running) >= 2, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods["items"]]
    first = replicasets(k8s)
    assert len(first) == 1
    first_hash = next(iter(first))

    # A second identical run changes nothing (kubernetes.core.helm's default check: no helm-diff).
    result, _out = run_helm_module(k8s, values())
    assert not result["failed"] and not result["changed"], result
    assert helm(k8s, "history", RELEASE, "-n", NAMESPACE, "-o", "json").stdout.count('"revision"') == 1

    # Upgrade to a new image tag: revision 2, a new ReplicaSet, the old one scaled to 0.
    result, _out = run_helm_module(k8s, values(tag="1.1.0"))
    assert not result["failed"] and result["changed"], result
    wait_for("the 1.1.0 rollout", lambda: rolled_out(k8s, "1.1.0"))
    rs = replicasets(k8s)
    assert len(rs) == 2, sorted(rs)
    second_hash = (set(rs) - {first_hash}).pop()
    assert rs[first_hash]["spec"]["replicas"] == 0 and rs[second_hash]["spec"]["replicas"] == 2
    history = json.loads(helm(k8s, "history", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    # Rollback to revision 1: revision 3, whose Deployment template equals revision 1's; the
    # Deployment goes back to the first ReplicaSet (same pod-template-hash), no third one.
    helm(k8s, "rollback", RELEASE, "1", "-n", NAMESPACE, "--wait", "--timeout", "120s")
    wait_for("the rollback's rollout", lambda: rolled_out(k8s, "1.0.0"))
    rs = replicasets(k8s)
    assert sorted(rs) == sorted({first_hash, second_hash})
    assert rs[first_hash]["spec"]["replicas"] == 2 and rs[second_hash]["spec"]["replicas"] == 0
    manifests = {rev: helm(k8s, "get", "manifest", RELEASE, "-n", NAMESPACE, "--revision", str(rev)).stdout
                 for rev in (1, 2, 3)}
    assert manifests[3] == manifests[1] != manifests[2]
    # The playbook with revision 1's values now finds nothing to do.
    result, _out = run_helm_module(k8s, values())
    assert not result["failed"] and not result["changed"], result
    print("install/upgrade/rollback in %.0f s" % (time.monotonic() - started))


# -- playbooks/tier_kubernetes.yml -----------------------------------------------------------
TIER_NAMESPACE = "rag-production"
NFS_NAMESPACE = "aistack-nfs-provisioner"
NFS_CLASS = "aistack-nfs"
NFS_PROVISIONER = "aistack.io/nfs-subdir-external-provisioner"


def run_tier(k8s, tmp_path, *args, **variables):
    """ansible-playbook playbooks/tier_kubernetes.yml -i inventories/kubernetes against the fixture.

    Returns (rc, stats of the controller host, the json callback's output)."""
    # The official Milvus and CloudNativePG charts are not reachable: their definitions are rendered
    # and checked against playbooks/schemas/ (the preflight), not installed.
    extra = dict(VAULT, aistack_k8s_kubeconfig=k8s["kubeconfig"], aistack_k8s_context=k8s["context"],
                 aistack_k8s_helm_binary=k8s["helm"], aistack_k8s_milvus_install=False, aistack_k8s_postgres_install=False)
    extra.update(variables)
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(extra))
    env = ansible_env({key: k8s["env"][key] for key in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")})
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i",
                           os.path.join(REPO, "inventories", "kubernetes"), os.path.join(REPO, "playbooks", "tier_kubernetes.yml"),
                           "-e", "@" + str(path)] + list(args),
                          env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc %s): %s %s" % (proc.returncode, proc.stdout[-2000:],
                                                                             proc.stderr[-2000:]))
    return proc.returncode, out["stats"].get("k8s-controller", {}), out


def failure_messages(out):
    return [h.get("msg", "") for play in out["plays"] for task in play["tasks"]
            for h in task["hosts"].values() if h.get("failed")]


@pytest.mark.parametrize("case, variables, needle", [
    ("unknown context", {"aistack_k8s_context": "no-such-context"}, "aistack_k8s_context: context no-such-context is not in"),
    ("missing storage class", {"aistack_k8s_storage_class": "fast-nvme"},
     "aistack_k8s_storage_class: the cluster has no StorageClass 'fast-nvme'"),
    ("replicas below the chart's minimum", {"aistack_k8s_ai_values": {"replicaCount": 0, "autoscaling": {"enabled": False}}},
     "aistack_k8s_ai_values.replicaCount"),
    ("missing vault secret", {"vault_k8s_postgres_app_password": ""},
     "Required variable 'vault_k8s_postgres_app_password' is missing, empty or a placeholder"),
    ("Milvus replicas below the chart's minimum",
     {"aistack_k8s_milvus_replicas": {"proxy": 2, "queryNode": 3, "dataNode": 0, "indexNode": 2}},
     "aistack_k8s_milvus_* values at dataNode.replicas: 0 is less than the minimum of 1"),
    ("values the chart's schema refuses", {"aistack_k8s_ai_values": {"ingress": {"enabled": True, "host": "ai.example",
                                                                                  "path": "/", "tlsSecretName": "Not_A_Name"}}},
     "tlsSecretName"),
    ("NFS provisioner without its server", {"aistack_k8s_nfs_provisioner_enabled": True, "aistack_k8s_nfs_path": "/exports/k8s"},
     "NFS provisioner (aistack_k8s_nfs_provisioner_enabled): aistack_k8s_nfs_server is required"),
    ("an index on a field the collection does not declare",
     {"aistack_k8s_index_milvus_enabled": True, "milvus_collections": [{
         "name": "documents", "fields": [{"name": "id", "type": "INT64", "is_primary": True},
                                         {"name": "embedding", "type": "FLOAT_VECTOR", "dim": 8}],
         "index": {"field": "vector", "index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 8, "efConstruction": 32}}}]},
     "milvus_collections documents: index.field vector is not a vector field declared in the collection"),
])
def test_tier_bad_input_fails_before_anything_is_applied(k8s, tmp_path, case, variables, needle):
    rc, stats, out = run_tier(k8s, tmp_path, **variables)
    assert rc != 0 and stats.get("failures") == 1, (case, stats)
    messages = failure_messages(out)
    assert any(needle in m for m in messages), (case, messages)
    assert api(k8s, "/api/v1/namespaces/" + TIER_NAMESPACE) is None
    assert api(k8s, "/api/v1/namespaces/" + NFS_NAMESPACE) is None
    assert api(k8s, "/apis/storage.k8s.io/v1/storageclasses/" + NFS_CLASS) is None


def test_tier_check_mode_then_real_then_unchanged(k8s, tmp_path):
    rc, stats, out = run_tier(k8s, tmp_path, "--check")
    assert rc == 0, failure_messages(out)
    assert api(k8s, "/api/v1/namespaces/" + TIER_NAMESPACE) is None

    rc, stats, out = run_tier(k8s, tmp_path)
    assert rc == 0 and stats["changed"] >= 4, (stats, failure_messages(out))
    ns = api(k8s, "/api/v1/namespaces/" + TIER_NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = api(k8s, "/api/v1/namespaces/%s/resourcequotas/aistack-quota" % TIER_NAMESPACE)
    assert quota["spec"]["hard"]["requests.cpu"] == "24"
    # The quota controller has counted the AI service's pods against it.
    wait_for("the quota's usage", lambda: api(k8s, "/api/v1/namespaces/%s/resourcequotas/aistack-quota" % TIER_NAMESPACE)
             .get("status", {}).get("used", {}).get("requests.cpu") not in (None, "0"))
    policy = api(k8s, "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/databases-from-ai-service" % TIER_NAMESPACE)
    assert policy["spec"]["podSelector"]["matchLabels"] == {"aistack.io/tier": "database"}
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ai-service", "app.kubernetes.io/instance": "ai-service"}
    assert sorted(p["port"] for p in policy["spec"]["ingress"][0]["ports"]) == [5432, 19530]
    dep = api(k8s, "/apis/apps/v1/namespaces/%s/deployments/ai-service" % TIER_NAMESPACE)
    assert dep["status"].get("readyReplicas", 0) >= 1  # helm --wait returned: the rollout is done

    secret = api(k8s, "/api/v1/namespaces/%s/secrets/ai-service-postgres" % TIER_NAMESPACE)
    assert secret["type"] == "kubernetes.io/basic-auth" and sorted(secret["data"]) == ["password", "username"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]} == {
        "MILVUS_PASSWORD": {"name": "ai-service-milvus", "key": "password"},
        "PGPASSWORD": {"name": "ai-service-postgres", "key": "password"}}
    said = [r.get("msg") for play in out["plays"] for task in play["tasks"] for h in task["hosts"].values()
            for r in h.get("results", []) if task["task"]["name"].startswith("Say which databases")]
    assert said == ["%s: rendered and checked against playbooks/schemas/ only, not installed" % what for what in (
        "Milvus (aistack_k8s_milvus_install is false)", "CloudNativePG (aistack_k8s_postgres_install is false)")], said

    rc, stats, out = run_tier(k8s, tmp_path)
    assert rc == 0 and stats["changed"] == 0, (stats, changed_tasks(out))
    rc, stats, out = run_tier(k8s, tmp_path, "--check")
    assert rc == 0 and stats["changed"] == 0, (stats, changed_tasks(out))
    assert len(tier_history(k8s)) == 1

    # A template change without a chart version bump (what kubernetes.core.helm's default check,
    # without helm-diff, does not see by itself): the rendered sha256 among the values differs, so the
    # check mode run reports it, the real run upgrades (revision 2) and then nothing is left to do.
    chart = tmp_path / "ai-service"
    shutil.copytree(CHART, chart)
    service = chart / "templates" / "service.yaml"
    text = service.read_text()
    assert "\nmetadata:\n" in text
    service.write_text(text.replace("\nmetadata:\n", "\nmetadata:\n  annotations:\n    aistack.io/template-test: changed\n", 1))
    rc, stats, out = run_tier(k8s, tmp_path, "--check", aistack_k8s_ai_chart=str(chart))
    assert rc == 0 and changed_tasks(out) == ["AI service (charts/ai-service)"], changed_tasks(out)
    assert len(tier_history(k8s)) == 1
    rc, stats, out = run_tier(k8s, tmp_path, aistack_k8s_ai_chart=str(chart))
    assert rc == 0 and changed_tasks(out) == ["AI service (charts/ai-service)"], changed_tasks(out)
    assert [h["revision"] for h in tier_history(k8s)] == [1, 2]
    svc = api(k8s, "/api/v1/namespaces/%s/services/ai-service" % TIER_NAMESPACE)
    assert svc["metadata"]["annotations"]["aistack.io/template-test"] == "changed"
    rc, stats, out = run_tier(k8s, tmp_path, aistack_k8s_ai_chart=str(chart))
    assert rc == 0 and stats["changed"] == 0, (stats, changed_tasks(out))
    assert len(tier_history(k8s)) == 2


def changed_tasks(out):
    return [task["task"]["name"] for play in out["plays"] for task in play["tasks"]
            if any(h.get("changed") for h in task["hosts"].values())]


def tier_history(k8s):
    return json.loads(helm(k8s, "history", "ai-service", "-n", TIER_NAMESPACE, "-o", "json").stdout)


# -- NFS provisioner (real API server, kwok node) and vector indexes (real databases outside the cluster) --
def task_results(out, name):
    return [h for play in out["plays"] for task in play["tasks"] if task["task"]["name"] == name
            for h in task["hosts"].values()]


def test_tier_nfs_provisioner_and_vector_indexes(k8s, tmp_path, pg_server, milvus_server):  # noqa: F811
    """The NFS provisioner's objects applied for real; the vector indexes against real databases outside the cluster.

    Simulated: the provisioner's pod is reported Running by kwok (no container runs, nothing mounts the
    export), so a claim of its StorageClass stays Pending. The index play reaches a real PostgreSQL +
    pgvector (tests/lib/pg_server.py) and a real Milvus 2.3.5 (tests/lib/milvus_server.py) standing in for
    the in-cluster Services: the in-cluster network path is not tested.
    """
    import psycopg2
    from pymilvus import MilvusClient
    from lib.pg_server import pg_connect

    # What CloudNativePG's bootstrap makes (the Cluster's initdb): the application user owning the
    # database, and the vector extension created by the superuser.
    admin = pg_connect(pg_server)
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE rag_app LOGIN PASSWORD %s", (VAULT["vault_k8s_postgres_app_password"],))
        cur.execute("CREATE DATABASE rag OWNER rag_app")
    admin.close()
    rag_admin = pg_connect(dict(pg_server, db="rag"))
    with rag_admin.cursor() as cur:
        cur.execute("CREATE EXTENSION vector")
    rag_admin.close()
    app = dict(host=pg_server["login_host"], port=pg_server["login_port"], user="rag_app",
               password=VAULT["vault_k8s_postgres_app_password"], dbname="rag")
    milvus = MilvusClient(uri=milvus_server, timeout=30)

    def pg_indexes():
        conn = psycopg2.connect(**app)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.relname = 'documents'")
                table = cur.fetchall()
                cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'documents' AND indexname <> 'documents_pkey'")
                return table, dict(cur.fetchall())
        finally:
            conn.close()

    variables = dict(
        aistack_k8s_nfs_provisioner_enabled=True, aistack_k8s_nfs_server="192.0.2.10", aistack_k8s_nfs_path="/exports/aistack-k8s",
        aistack_k8s_index_postgres_enabled=True, aistack_k8s_index_postgres_host=pg_server["login_host"],
        aistack_k8s_index_postgres_port=pg_server["login_port"], aistack_k8s_index_milvus_enabled=True,
        aistack_k8s_index_milvus_uri=milvus_server, aistack_k8s_index_wait_timeout=30)

    # Check mode: nothing is created, in the cluster or in the databases.
    started = time.monotonic()
    rc, stats, out = run_tier(k8s, tmp_path, "--check", **variables)
    assert rc == 0, failure_messages(out)
    changed = changed_tasks(out)
    for name in ("NFS provisioner - namespace, service account, RBAC, Deployment and StorageClass",
                 "Say what check mode would create in the NFS provisioner's new namespace",
                 "PostgreSQL - tables", "Milvus - collections and partitions (aistack.infra.milvus_collection)"):
        assert name in changed, changed
    assert api(k8s, "/api/v1/namespaces/" + NFS_NAMESPACE) is None
    assert api(k8s, "/apis/storage.k8s.io/v1/storageclasses/" + NFS_CLASS) is None
    assert api(k8s, "/apis/rbac.authorization.k8s.io/v1/clusterroles/aistack-nfs-provisioner") is None
    assert pg_indexes() == ([], {})
    assert not milvus.has_collection("documents")
    timings = {"check mode (first)": time.monotonic() - started}

    # For real.
    started = time.monotonic()
    rc, stats, out = run_tier(k8s, tmp_path, **variables)
    assert rc == 0, failure_messages(out)
    timings["real"] = time.monotonic() - started
    ns = api(k8s, "/api/v1/namespaces/" + NFS_NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert api(k8s, "/api/v1/namespaces/%s/serviceaccounts/aistack-nfs-provisioner" % NFS_NAMESPACE)
    role = api(k8s, "/apis/rbac.authorization.k8s.io/v1/clusterroles/aistack-nfs-provisioner")
    assert {r["resources"][0]: r["verbs"] for r in role["rules"]}["persistentvolumes"] == ["get", "list", "watch", "create", "delete"]
    binding = api(k8s, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/aistack-nfs-provisioner")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aistack-nfs-provisioner", "namespace": NFS_NAMESPACE}]
    assert api(k8s, "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings/aistack-nfs-provisioner-leader" % NFS_NAMESPACE)
    dep = api(k8s, "/apis/apps/v1/namespaces/%s/deployments/aistack-nfs-provisioner" % NFS_NAMESPACE)
    assert dep["status"].get("readyReplicas") == 1, dep["status"]  # the module waited for the rollout
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2"
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "PROVISIONER_NAME": NFS_PROVISIONER, "NFS_SERVER": "192.0.2.10", "NFS_PATH": "/exports/aistack-k8s"}
    pods = api(k8s, "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io/instance%%3Daistack-nfs" % NFS_NAMESPACE)["items"]
    # Scheduled on a kwok node, which reports it Running (simulated: no container, no NFS mount).
    assert [(p["status"]["phase"], p["spec"]["nodeName"] in k8s["nodes"]) for p in pods] == [("Running", True)], pods
    assert pods[0]["spec"]["volumes"][0]["nfs"] == {"server": "192.0.2.10", "path": "/exports/aistack-k8s"}
    sc = api(k8s, "/apis/storage.k8s.io/v1/storageclasses/" + NFS_CLASS)
    assert (sc["provisioner"], sc["reclaimPolicy"], sc["parameters"]) == (NFS_PROVISIONER, "Retain", {"archiveOnDelete": "true"})
    policy = api(k8s, "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/databases-from-ai-service" % TIER_NAMESPACE)
    assert len(policy["spec"]["ingress"][0]["from"]) == 1  # no extra peer given
    # The indexes, checked with independent connections as the application user and with pymilvus.
    table, indexes = pg_indexes()
    assert table == [("documents", "rag_app")]
    assert indexes == {"documents_embedding_hnsw": "CREATE INDEX documents_embedding_hnsw ON public.documents USING hnsw "
                                                   "(embedding vector_cosine_ops) WITH (m='16', ef_construction='64')"}
    assert milvus.has_collection("documents")
    assert sorted(milvus.list_partitions("documents")) == ["_default", "tenant_a", "tenant_b"]
    index = milvus.describe_index("documents", milvus.list_indexes("documents", field_name="embedding")[0])
    assert (index["index_type"], index["metric_type"], str(index["M"]), str(index["efConstruction"])) == ("HNSW", "COSINE", "16", "64")
    assert milvus.get_load_state("documents")["state"].name == "Loaded"

    # Again: nothing changes, and the preflight's StorageClass check passes against the class made above.
    started = time.monotonic()
    rc, stats, out = run_tier(k8s, tmp_path, **variables)
    assert rc == 0 and stats["changed"] == 0, (stats, changed_tasks(out))
    timings["second run"] = time.monotonic() - started
    [lookup] = task_results(out, "Look up the storage class")
    assert [r["metadata"]["name"] for r in lookup["resources"]] == [NFS_CLASS]
    [check] = task_results(out, "Fail when the storage class does not exist")
    assert not check.get("skipped") and not check.get("failed"), check
    started = time.monotonic()
    rc, stats, out = run_tier(k8s, tmp_path, "--check", **variables)
    assert rc == 0 and stats["changed"] == 0, (stats, changed_tasks(out))
    timings["check mode (after)"] = time.monotonic() - started
    assert pg_indexes()[1] == indexes

    # A claim of the class: the PersistentVolume controller hands it to the external provisioner named in
    # the class, which does not run here (kwok), so the claim stays Pending.
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "nfs-probe", "namespace": TIER_NAMESPACE},
             "spec": {"storageClassName": NFS_CLASS, "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}
    api(k8s, "/api/v1/namespaces/%s/persistentvolumeclaims" % TIER_NAMESPACE, "POST", claim)
    try:
        event = wait_for("the PersistentVolume controller's event for the claim", lambda: [
            e for e in api(k8s, "/api/v1/namespaces/%s/events?fieldSelector=involvedObject.name%%3Dnfs-probe" % TIER_NAMESPACE)["items"]
            if e["reason"] == "ExternalProvisioning"], timeout=60)
        assert NFS_PROVISIONER in event[0]["message"], event[0]["message"]
        pvc = api(k8s, "/api/v1/namespaces/%s/persistentvolumeclaims/nfs-probe" % TIER_NAMESPACE)
        assert pvc["status"]["phase"] == "Pending"
    finally:
        api(k8s, "/api/v1/namespaces/%s/persistentvolumeclaims/nfs-probe" % TIER_NAMESPACE, "DELETE")
        milvus.drop_collection("documents")
        milvus.close()
    print("NFS + indexes: " + ", ".join("%s %.0f s" % item for item in timings.items()))
