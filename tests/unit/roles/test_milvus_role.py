# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The milvus role: invalid variables fail in preflight, naming the variable, before any change;
milvus.yaml, minio.env and the computed container settings render as documented for every release
line the role accepts (2.3, 2.5, 2.6) and every object storage (MinIO mode included, which the lab
cannot run: it has no MinIO image; S3 mode also runs for real against SeaweedFS in
tests/integration/test_milvus_s3.py); and the bootstrap hands every
collection setting to aistack.infra.milvus_collection (whose planning and refusals are tested in
tests/unit/plugins and tests/integration/test_milvus_collection.py).

Real ansible-playbook runs against localhost. The preflight probe includes the role once per case
in a block whose rescue records the failure message, in check mode and limited to the
`milvus_preflight` tag: only argument validation and the preflight assertions can run, so nothing
of the role touches this machine even if a case were wrongly accepted. The render test templates
the role's own templates with its defaults and vars into a temporary directory.
"""
import json
import os

import pytest
import yaml
from lib.ansible_run import preflight_suite, render_role_templates

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "milvus")

COLLECTION = {
    "name": "documents",
    "description": "RAG chunks",
    "fields": [
        {"name": "id", "type": "INT64", "is_primary": True},
        {"name": "tenant", "type": "VARCHAR", "max_length": 64},
        {"name": "embedding", "type": "FLOAT_VECTOR", "dim": 16},
    ],
    "partitions": ["tenant_a", "tenant_b"],
    "consistency_level": "Strong",
    "index": {"field": "embedding", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}},
    "load": True,
}
VALID = {
    "milvus_object_storage": "minio",
    "milvus_minio_access_key": "aistack-milvus",
    "milvus_minio_secret_key": "S3cr3t-minio-key-42",
    "milvus_authorization_enabled": True,
    "milvus_root_password": "R00t-password-for-milvus",
    "milvus_collections": [COLLECTION],
}
S3 = {
    "milvus_object_storage": "s3",
    "milvus_s3_endpoint": "s3.storage.internal:8333",
    "milvus_s3_bucket": "milvus-segments",
    "milvus_s3_use_ssl": False,
    "milvus_s3_access_key": "aistack-s3-user",
    "milvus_s3_secret_key": "S3-secret-key-for-milvus-77",
}
SECRETS = ("S3-secret-key-for-milvus-77", "S3cr3t-minio-key-42", "R00t-password-for-milvus", "MinIOAdmin-2024", "abc1234", "Milvus")


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


def _collection(**changes):
    collection = dict(COLLECTION)
    collection.update(changes)
    return _with(milvus_collections=[collection])


def _fields(*extra, primary="INT64"):
    return [{"name": "id", "type": primary, "is_primary": True, "max_length": 64},
            {"name": "embedding", "type": "FLOAT_VECTOR", "dim": 16}] + list(extra)


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "valid-local-storage-without-keys": (_with(milvus_object_storage="local", milvus_minio_access_key="",
                                               milvus_minio_secret_key=""), None),
    "valid-no-auth-no-root-password": (_with(milvus_authorization_enabled=False, milvus_root_password=""), None),
    "valid-ipv6-bind": (_with(milvus_bind_address="::1"), None),
    "valid-config-override": (_with(milvus_config={"queryNode": {"segcore": {"chunkRows": 256}}}), None),
    "valid-host-paths": (_with(milvus_data_path="/srv/nfs/milvus", milvus_etcd_data_path="/srv/nfs/etcd"), None),
    "minio-keys-missing": (_with(milvus_minio_access_key="", milvus_minio_secret_key=""),
                           ["milvus_minio_access_key is missing or empty; milvus_minio_secret_key is missing or empty"]),
    "minio-secret-blank": (_with(milvus_minio_secret_key="    "), ["milvus_minio_secret_key is missing or empty"]),
    "minio-secret-minioadmin": (_with(milvus_minio_secret_key="minioadmin"),
                                ["milvus_minio_secret_key is left at a placeholder or a well-known default"]),
    "minio-secret-minioadmin-variant": (_with(milvus_minio_secret_key="MinIOAdmin-2024"),
                                        ["milvus_minio_secret_key is left at a placeholder"]),
    "minio-access-key-minioadmin": (_with(milvus_minio_access_key="minioadmin"),
                                    ["milvus_minio_access_key is left at a placeholder"]),
    "minio-secret-placeholder": (_with(milvus_minio_secret_key="CHANGE_ME"),
                                 ["milvus_minio_secret_key is left at a placeholder"]),
    "minio-secret-short": (_with(milvus_minio_secret_key="abc1234"),
                           ["milvus_minio_secret_key is shorter than 8 characters"]),
    "minio-secret-white-space": (_with(milvus_minio_secret_key="two words here"),
                                 ["milvus_minio_secret_key contains white space"]),
    "minio-secret-equals-access-key": (_with(milvus_minio_access_key="same-value-123", milvus_minio_secret_key="same-value-123"),
                                       ["milvus_minio_secret_key equals milvus_minio_access_key"]),
    "root-password-missing": (_with(milvus_root_password=""), ["milvus_root_password is missing or empty"]),
    "root-password-milvus-default": (_with(milvus_root_password="Milvus"),
                                     ["milvus_root_password is left at a placeholder"]),
    "object-storage-choice": (_with(milvus_object_storage="nfs"), ["milvus_object_storage", "minio, s3, local"]),
    "valid-2.5": (_with(milvus_version="2.5.26"), None),
    "valid-2.3-allowed": (_with(milvus_version="2.3.5", milvus_allow_unsupported_release=True), None),
    "release-2.3-unsupported": (_with(milvus_version="2.3.5"),
                                ["milvus_version 2.3.5 is of the 2.3 line, which upstream no longer supports",
                                 "milvus_allow_unsupported_release: true"]),
    "release-unknown-line": (_with(milvus_version="3.0.1"),
                             ["milvus_version must be a release X.Y.Z of a line the role supports: 2.5, 2.6", "it is 3.0.1"]),
    "release-not-a-version": (_with(milvus_version="latest"), ["milvus_version must be a release X.Y.Z", "it is latest"]),
    "valid-gpu-tag": (_with(milvus_image_tag="v2.6.16-gpu"), None),
    "image-tag-of-another-line": (_with(milvus_image_tag="v2.3.5"),
                                  ["milvus_image_tag v2.3.5 is a 2.3 build but milvus_version is 2.6.16 (2.6)"]),
    "valid-s3": (_with(**S3), None),
    "s3-keys-missing": (_with(**dict(S3, milvus_s3_access_key="", milvus_s3_secret_key="")),
                        ["milvus_s3_access_key is missing or empty; milvus_s3_secret_key is missing or empty"]),
    "s3-secret-placeholder": (_with(**dict(S3, milvus_s3_secret_key="changeme")),
                              ["milvus_s3_secret_key is left at a placeholder"]),
    "s3-secret-equals-access-key": (_with(**dict(S3, milvus_s3_access_key="same-value-123", milvus_s3_secret_key="same-value-123")),
                                    ["milvus_s3_secret_key equals milvus_s3_access_key"]),
    "s3-endpoint-and-bucket-missing": (_with(**dict(S3, milvus_s3_endpoint="", milvus_s3_bucket="")),
                                       ["milvus_s3_endpoint is missing or empty", "milvus_s3_bucket is missing or empty"]),
    "s3-endpoint-url": (_with(**dict(S3, milvus_s3_endpoint="https://s3.example.net/")),
                        ["milvus_s3_endpoint must be host or host:port, without a scheme or path (is https://s3.example.net/)"]),
    "s3-bucket-name": (_with(**dict(S3, milvus_s3_bucket="Milvus_Bucket")), ["milvus_s3_bucket must be an S3 bucket name"]),
    "config-owned-bucket": (_with(milvus_config={"minio": {"bucketName": "other"}}), ["milvus_config may not set minio.bucketName"]),
    "bind-hostname": (_with(milvus_bind_address="localhost"),
                      ["milvus_bind_address must be an IPv4 or IPv6 address, not a host name (is localhost)"]),
    "port-range": (_with(milvus_port=70000), ["milvus_port must be 1-65535 (is 70000)"]),
    "ports-collide": (_with(milvus_metrics_port=19530), ["milvus_port, milvus_metrics_port must be distinct"]),
    "subnet": (_with(milvus_network_subnet="10.1.2.0"), ["milvus_network_subnet must be empty or an IPv4 CIDR"]),
    "container-name": (_with(milvus_container_name="my milvus"), ["milvus_container_name must be a Docker name"]),
    "container-names-collide": (_with(milvus_etcd_container_name="aistack-milvus"),
                                ["the milvus_*container_name variables must be distinct"]),
    "data-path-relative": (_with(milvus_data_path="data/milvus"), ["milvus_data_path must be an absolute path"]),
    "data-paths-collide": (_with(milvus_data_path="/srv/milvus", milvus_etcd_data_path="/srv/milvus"),
                           ["milvus_data_path, milvus_etcd_data_path and milvus_minio_data_path must be distinct"]),
    "health-retries": (_with(milvus_health_retries=0), ["milvus_health_retries must be 1 or more"]),
    "image-pull-choice": (_with(milvus_image_pull="sometimes"), ["milvus_image_pull", "missing, always, never"]),
    "etcd-root-path": (_with(milvus_etcd_root_path="by/dev"), ["milvus_etcd_root_path must be letters, digits"]),
    "db-name": (_with(milvus_db_name="1st-db"), ["milvus_db_name must be letters, digits and _"]),
    "config-owned-endpoint": (_with(milvus_config={"etcd": {"endpoints": "elsewhere:2379"}}),
                              ["milvus_config may not set etcd.endpoints"]),
    "config-owned-port-and-auth": (_with(milvus_config={"proxy": {"port": 1}, "common": {"security": {"authorizationEnabled": False}}}),
                                   ["milvus_config may not set proxy.port, common.security.authorizationEnabled"]),
    "collection-two-primaries": (_collection(fields=_fields({"name": "other", "type": "INT64", "is_primary": True})),
                                 ["milvus_collections[0] (documents): exactly one field needs is_primary: true (found 2)"]),
    "collection-float-primary": (_collection(fields=_fields(primary="FLOAT")),
                                 ["the primary field id must be INT64 or VARCHAR"]),
    "collection-no-vector": (_collection(fields=[{"name": "id", "type": "INT64", "is_primary": True}], index=None, load=False),
                             ["a collection needs a FLOAT_VECTOR or BINARY_VECTOR field"]),
    "collection-vector-without-dim": (_collection(fields=[{"name": "id", "type": "INT64", "is_primary": True},
                                                          {"name": "embedding", "type": "FLOAT_VECTOR"}]),
                                      ["field embedding: FLOAT_VECTOR needs dim >= 1"]),
    "collection-binary-dim": (_collection(fields=_fields({"name": "code", "type": "BINARY_VECTOR", "dim": 12})),
                              ["field code: BINARY_VECTOR dim must be a multiple of 8"]),
    "collection-varchar-length": (_collection(fields=_fields({"name": "text", "type": "VARCHAR"})),
                                  ["field text: VARCHAR needs max_length 1-65535"]),
    "collection-array": (_collection(fields=_fields({"name": "tags", "type": "ARRAY", "max_capacity": 4})),
                         ["field tags: ARRAY needs element_type and max_capacity >= 1"]),
    "collection-auto-id-not-primary": (_collection(fields=_fields({"name": "n", "type": "INT64", "auto_id": True})),
                                       ["field n: auto_id is only for the primary field"]),
    "collection-partition-default": (_collection(partitions=["_default"]), ["invalid partition name _default"]),
    "collection-partitions-repeated": (_collection(partitions=["a", "a"]), ["partition names must be unique"]),
    "collection-index-scalar-field": (_collection(index=dict(COLLECTION["index"], field="tenant")),
                                      ["index.field must name one of its vector fields (embedding)"]),
    "collection-load-without-index": (_collection(index=None), ["load needs an index"]),
    "collection-names-repeated": (_with(milvus_collections=[COLLECTION, COLLECTION]), ["collection names must be unique"]),
    "collection-name": (_collection(name="my-docs"), ["name must be letters, digits and _"]),
    "collection-field-type": (_collection(fields=_fields({"name": "sparse", "type": "SPARSE_FLOAT_VECTOR"})),
                              ["value of type must be one of"]),
    "collection-without-fields": (_with(milvus_collections=[{"name": "documents"}]),
                                  ["missing required arguments: fields"]),
    "backup-retention-partial": (_with(milvus_backup_retention={"monthly": 0}), None),
    "backup-dir-relative": (_with(milvus_backup_dir="backups/milvus"),
                            ["milvus_backup_dir must be an absolute path (is backups/milvus)"]),
    "backup-retention-daily-zero": (_with(milvus_backup_retention={"daily": 0}),
                                    ["milvus_backup_retention.daily must be a whole number of sets, 1 or more (is 0)"]),
    "backup-retention-weekly-negative": (_with(milvus_backup_retention={"weekly": -2}),
                                         ["milvus_backup_retention.weekly must be a whole number of sets, 0 or more (is -2)"]),
    "backup-retention-unknown-tier": (_with(milvus_backup_retention={"hourly": 24}), ["milvus_backup_retention", "hourly"]),
    "collection-index-without-type": (_collection(index={"field": "embedding", "metric_type": "L2"}),
                                      ["missing required arguments: index_type"]),
}


PREFLIGHT = {"Validating arguments against arg spec", "Assert that milvus_version is a release line",
             "Assert that milvus_image_tag is a build", "Judge the credentials", "Assert that every credential",
             "Assert that the container, network, port and path settings", "Assert that milvus_config",
             "Assert that the collections to bootstrap",
             # the GPU pin check reads the PCI bus (aistack.infra.gpu_pci_info, read-only) and asserts
             "Count the host's GPUs for the Milvus pin", "Assert that the Milvus GPU pin"}
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("milvus", CASES, PREFLIGHT, tuple('"Milvus"' if s == "Milvus" else s for s in SECRETS))


# --- Rendering -----------------------------------------------------------------------------------

COMPUTED = ("_milvus_release_line", "_milvus_image", "_milvus_etcd_image", "_milvus_minio_image", "_milvus_attu_image", "_milvus_container_env",
            "_milvus_client_uri", "_milvus_publish_address", "_milvus_named_volumes", "_milvus_host_paths",
            "_milvus_data_source", "_milvus_bootstrap_wanted", "_milvus_client_token")


def _render(extra):
    variables = dict(VALID)
    variables.update(extra)
    files = render_role_templates("milvus", ("milvus.yaml", "minio.env"), variables, mode="0600",
                                  computed="{%s}" % ", ".join("'%s': %s" % (name, name) for name in COMPUTED))
    files["config"] = yaml.safe_load(files["milvus.yaml"])
    files["computed"] = json.loads(files["computed.json"])
    return files


@pytest.fixture(scope="module")
def minio():
    return _render({"milvus_config": {"queryNode": {"segcore": {"chunkRows": 256}}, "proxy": {"maxDimension": 4096}}})


@pytest.fixture(scope="module")
def local():
    return _render({"milvus_object_storage": "local", "milvus_minio_access_key": "", "milvus_minio_secret_key": "",
                    "milvus_authorization_enabled": False, "milvus_bind_address": "0.0.0.0",
                    "milvus_data_path": "/srv/nfs/milvus", "aistack_image_registry": "172.31.213.2:5000"})


def test_minio_mode_config(minio):
    conf = minio["config"]
    assert minio["milvus.yaml"].startswith("#\n# Ansible managed")
    assert conf["common"]["storageType"] == "remote"
    assert conf["common"]["security"]["authorizationEnabled"] is True
    assert conf["minio"] == {
        "address": "aistack-milvus-minio", "port": 9000, "accessKeyID": "aistack-milvus",
        "secretAccessKey": "S3cr3t-minio-key-42", "useSSL": False, "bucketName": "milvus-bucket",
        "rootPath": "files", "useIAM": False, "cloudProvider": "aws"}
    assert conf["etcd"]["endpoints"] == "aistack-milvus-etcd:2379"
    assert conf["etcd"]["use"]["embed"] is False
    assert conf["etcd"]["rootPath"] == "by-dev"
    assert conf["proxy"]["port"] == 19530
    assert conf["localStorage"]["path"] == "/var/lib/milvus/data/"
    assert conf["rocksmq"]["path"] == "/var/lib/milvus/rdb_data"


def test_minio_env_file(minio):
    lines = [line for line in minio["minio.env"].splitlines() if not line.startswith("#")]
    assert lines == ["MINIO_ROOT_USER=aistack-milvus", "MINIO_ROOT_PASSWORD=S3cr3t-minio-key-42"]


def test_milvus_config_merged_recursively(minio):
    conf = minio["config"]
    assert conf["queryNode"]["segcore"] == {"chunkRows": 256}
    assert conf["queryNode"]["port"] == 21123
    assert conf["queryNode"]["gracefulStopTimeout"] == 5
    assert conf["proxy"] == {"port": 19530, "internalPort": 19529, "http": {"enabled": True}, "maxDimension": 4096}


def test_minio_mode_containers(minio):
    computed = minio["computed"]
    # The default release (2.6) and the images of its line's docker-compose file.
    assert computed["_milvus_release_line"] == "2.6"
    assert computed["_milvus_image"] == "docker.io/milvusdb/milvus:v2.6.16"
    assert computed["_milvus_etcd_image"] == "quay.io/coreos/etcd:v3.5.18"
    assert computed["_milvus_minio_image"] == "docker.io/minio/minio:RELEASE.2024-05-28T17-19-04Z"
    assert computed["_milvus_attu_image"] == "docker.io/zilliz/attu:v2.5.6"
    assert computed["_milvus_container_env"] == {"ETCD_ENDPOINTS": "aistack-milvus-etcd:2379",
                                                 "MINIO_ADDRESS": "aistack-milvus-minio:9000"}
    assert computed["_milvus_client_uri"] == "http://127.0.0.1:19530"
    assert computed["_milvus_publish_address"] == "127.0.0.1"
    assert computed["_milvus_named_volumes"] == ["aistack-milvus-data", "aistack-milvus-etcd-data", "aistack-milvus-minio-data"]
    assert computed["_milvus_host_paths"] == []
    assert computed["_milvus_bootstrap_wanted"] is True


def test_local_mode(local):
    conf, computed = local["config"], local["computed"]
    assert conf["common"]["storageType"] == "local"
    assert conf["common"]["security"]["authorizationEnabled"] is False
    assert "minio" not in conf
    assert computed["_milvus_container_env"] == {"ETCD_ENDPOINTS": "aistack-milvus-etcd:2379"}
    # One registry prefix for every image, etcd's included, once it is a mirror.
    assert computed["_milvus_image"] == "172.31.213.2:5000/milvusdb/milvus:v2.6.16"
    assert computed["_milvus_etcd_image"] == "172.31.213.2:5000/coreos/etcd:v3.5.18"
    # A wildcard binding is reached on loopback by the bootstrap.
    assert computed["_milvus_client_uri"] == "http://127.0.0.1:19530"
    assert computed["_milvus_data_source"] == "/srv/nfs/milvus"
    assert computed["_milvus_named_volumes"] == ["aistack-milvus-etcd-data"]
    assert computed["_milvus_host_paths"] == ["/srv/nfs/milvus"]


# --- Release lines: what differs between 2.3, 2.5 and 2.6 ------------------------------------------

# The component ports every line's milvus.yaml carries (the compiled-in default of every component
# port is the proxy's 19530, so a replaced milvus.yaml must list them all).
COMMON_PORTS = {"rootCoord": 53100, "proxy": 19530, "queryCoord": 19531, "queryNode": 21123, "dataCoord": 13333,
                "dataNode": 21124}


def _ports(conf):
    return {name: conf[name]["port"] for name in conf if isinstance(conf[name], dict) and "port" in conf[name]
            and name != "minio"}


@pytest.fixture(scope="module")
def releases(minio):
    """The same variables (minio mode) for each line; 2.6 is the default (the minio fixture)."""
    rendered = {line: _render({"milvus_version": version, "milvus_allow_unsupported_release": True,
                               "milvus_config": {"queryNode": {"segcore": {"chunkRows": 256}}, "proxy": {"maxDimension": 4096}}})
                for line, version in (("2.3", "2.3.5"), ("2.5", "2.5.26"))}
    rendered["2.6"] = minio
    return rendered


def test_release_2_3_is_the_labs_layout(releases):
    """2.3.5 (the lab's Milvus, run for real by molecule milvus and make lab): the layout that ran
    there, unchanged: an index node, no streaming node, etcd 3.5.5."""
    conf, computed = releases["2.3"]["config"], releases["2.3"]["computed"]
    assert computed["_milvus_release_line"] == "2.3"
    assert computed["_milvus_image"] == "docker.io/milvusdb/milvus:v2.3.5"
    assert computed["_milvus_etcd_image"] == "quay.io/coreos/etcd:v3.5.5"
    assert computed["_milvus_minio_image"] == "docker.io/minio/minio:RELEASE.2023-03-20T20-16-18Z"
    assert computed["_milvus_attu_image"] == "docker.io/zilliz/attu:v2.3.6"
    assert _ports(conf) == dict(COMMON_PORTS, indexNode=21121)
    assert conf["mq"] == {"type": "rocksmq"}
    assert conf["quotaAndLimits"] == {"enabled": True}
    assert releases["2.3"]["milvus.yaml"].count("Milvus v2.3.5 standalone") == 1


def test_release_2_5_layout(releases):
    conf, computed = releases["2.5"]["config"], releases["2.5"]["computed"]
    assert computed["_milvus_image"] == "docker.io/milvusdb/milvus:v2.5.26"
    assert computed["_milvus_etcd_image"] == "quay.io/coreos/etcd:v3.5.18"
    assert _ports(conf) == dict(COMMON_PORTS, indexNode=21121)
    assert "streamingNode" not in conf


def test_release_2_6_layout(releases):
    """2.6 merged the index node into the data node and added a streaming node, which runs inside
    the standalone process on a port of its own; the WAL stays RocksMQ (the standalone default)."""
    conf, computed = releases["2.6"]["config"], releases["2.6"]["computed"]
    assert computed["_milvus_image"] == "docker.io/milvusdb/milvus:v2.6.16"
    assert _ports(conf) == dict(COMMON_PORTS, streamingNode=22222)
    assert "indexNode" not in conf
    assert conf["mq"] == {"type": "rocksmq"}


def test_release_lines_share_everything_else(releases):
    """Apart from the component ports, every line renders the same settings."""
    def rest(conf):
        return {k: v for k, v in conf.items() if k not in ("indexNode", "streamingNode")}
    assert rest(releases["2.3"]["config"]) == rest(releases["2.5"]["config"]) == rest(releases["2.6"]["config"])


# --- S3 object storage -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    return _render(S3)


def test_s3_mode_config(s3):
    conf, computed = s3["config"], s3["computed"]
    assert conf["common"]["storageType"] == "remote"
    assert conf["minio"] == {
        "address": "s3.storage.internal", "port": 8333, "accessKeyID": "aistack-s3-user",
        "secretAccessKey": "S3-secret-key-for-milvus-77", "useSSL": False, "bucketName": "milvus-segments",
        "rootPath": "files", "region": "us-east-1", "useIAM": False, "cloudProvider": "aws", "useVirtualHost": False}
    # No MinIO container, volume or address override: the endpoint is the configuration's.
    assert computed["_milvus_container_env"] == {"ETCD_ENDPOINTS": "aistack-milvus-etcd:2379"}
    assert computed["_milvus_named_volumes"] == ["aistack-milvus-data", "aistack-milvus-etcd-data"]


def test_s3_default_port_follows_tls():
    """Without a port, TLS means 443 (80 without TLS: the same expression, see vars/main.yml)."""
    tls = _render(dict(S3, milvus_s3_endpoint="s3.eu-west-1.amazonaws.com", milvus_s3_use_ssl=True,
                       milvus_s3_region="eu-west-1", milvus_s3_use_virtual_host=True))["config"]["minio"]
    assert (tls["address"], tls["port"], tls["useSSL"], tls["region"], tls["useVirtualHost"]) == \
        ("s3.eu-west-1.amazonaws.com", 443, True, "eu-west-1", True)


def test_ipv6_binding():
    computed = _render({"milvus_bind_address": "fd00::10"})["computed"]
    assert computed["_milvus_publish_address"] == "[fd00::10]"
    assert computed["_milvus_client_uri"] == "http://[fd00::10]:19530"


# --- Bootstrap: the role hands its collections to the modules ------------------------------------

def test_bootstrap_script_is_gone_and_the_modules_accept_every_role_field_type():
    """The role's field types (meta/argument_specs.yml) are all types milvus_collection creates; the
    shipped script is gone (its logic is aistack.infra.milvus_collection and milvus_user now, tested
    in tests/unit/plugins and, with this role's bootstrap tasks, in tests/integration/test_milvus_collection.py)."""
    from ansible_collections.aistack.infra.plugins.module_utils._milvus_collection import FIELD_TYPES

    assert not os.path.exists(os.path.join(ROLE, "files", "milvus_bootstrap.py"))
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as fh:
        spec = yaml.safe_load(fh)
    collection = spec["argument_specs"]["main"]["options"]["milvus_collections"]["options"]
    role_types = collection["fields"]["options"]["type"]["choices"]
    assert set(role_types) <= set(FIELD_TYPES)
    module_options = set(_module_doc()["options"])
    # every per-collection key of the role but the index settings is a milvus_collection option
    assert set(collection) - {"name", "index", "load"} <= module_options
    assert set(collection["fields"]["options"]) == set(_module_doc()["options"]["fields"]["suboptions"])


def _module_doc():
    from ansible_collections.aistack.infra.plugins.modules import milvus_collection

    return yaml.safe_load(milvus_collection.DOCUMENTATION)


def test_bootstrap_token_follows_authorization(minio, local):
    assert minio["computed"]["_milvus_client_token"] == "root:R00t-password-for-milvus"  # authorization on
    assert local["computed"]["_milvus_client_token"] == ""  # off
