"""The OpenSearch exporter the monitoring role runs, against a real OpenSearch, in every cluster colour.

The exporter is the lab's image of ``prometheuscommunity/elasticsearch-exporter`` (Debian 12's
prometheus-elasticsearch-exporter, ``lab/images/elasticsearch-exporter``), started with the flags the
role gives it (``--es.uri``, ``--es.indices``, ``--web.listen-address``), in the host's network
namespace so that it reaches the test node on 127.0.0.1 and listens there only. The node is the
session's OpenSearch (``lib.opensearch_server``, 3.5 from Maven Central where a JDK 21+ is present).
The cluster is made yellow for real (an index whose replica has no second node) and red (an index
whose primary may be allocated to no node), and the exporter must report each colour as the role's
alert rules read it; every metric of the role's OpenSearch dashboard must be served.
"""
import json
import os
import subprocess
import time
import urllib.request

import pytest

from lib.milvus_server import free_ports
from lib.prometheus_text import monitoring_metric_names, scrape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "aistack-lab/elasticsearch-exporter:v1.5.0"
NAME = "aistack-test-i10-esexp"


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def request(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read().decode() or "null")


def colour(samples):
    """The colour whose elasticsearch_cluster_health_status series is 1."""
    on = [dict(labels)["color"] for (name, labels), value in samples.items()
          if name == "elasticsearch_cluster_health_status" and value == 1]
    assert len(on) == 1, on
    return on[0]


@pytest.fixture(scope="module")
def exporter(opensearch_server):
    proc = subprocess.run([os.path.join(REPO, "lab", "bin", "images.sh"), "elasticsearch-exporter"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    docker("rm", "-f", NAME, check=False)
    port = free_ports(1)[0]
    docker("run", "-d", "--name", NAME, "--network", "host", IMAGE,
           "--es.uri=%s" % opensearch_server["hosts"][0], "--es.indices", "--es.timeout=10s",
           "--web.listen-address=127.0.0.1:%d" % port)
    url = "http://127.0.0.1:%d/metrics" % port
    deadline = time.monotonic() + 60
    while True:
        try:
            scrape(url)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(docker("logs", NAME, check=False).stderr[-2000:])
            time.sleep(1)
    try:
        yield opensearch_server, url
    finally:
        docker("rm", "-f", NAME, check=False)


def wait_colour(url, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if colour(samples) == wanted or time.monotonic() > deadline:
            return samples
        time.sleep(1)


def dashboard_metrics():
    """Metric names of the monitoring role's OpenSearch rules and dashboard (elasticsearch_*)."""
    return monitoring_metric_names('opensearch.rules.yml.j2', r"\b(elasticsearch_[a-z_]+)")


def test_cluster_colours_and_dashboard_metrics(exporter):
    server, url = exporter
    node = server["hosts"][0]
    assert server["version"].split(".")[0] in ("2", "3"), server["version"]
    for index in ("aistack-esexp-yellow", "aistack-esexp-red"):
        request("%s/%s?ignore_unavailable=true" % (node, index), method="DELETE")

    # A single node with only indices without replicas: green.
    request("%s/aistack-esexp-docs" % node, "PUT", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    request("%s/aistack-esexp-docs/_doc/1?refresh=true" % node, "PUT", {"message": "hello"})
    samples = wait_colour(url, "green")
    assert colour(samples) == "green"
    assert [v for (name, _), v in samples.items() if name == "elasticsearch_cluster_health_up"] == [1]
    names = {name for name, _ in samples}
    wanted = dashboard_metrics()
    assert {"elasticsearch_cluster_health_status", "elasticsearch_indices_docs"} <= wanted
    assert wanted <= names, "not served: %s" % sorted(wanted - names)

    try:
        # A replica that no second node can hold: yellow (OpenSearchClusterYellow).
        request("%s/aistack-esexp-yellow" % node, "PUT", {"settings": {"number_of_shards": 1, "number_of_replicas": 1}})
        assert colour(wait_colour(url, "yellow")) == "yellow"
        # A primary that may be allocated to no node: red (OpenSearchClusterRed).
        request("%s/aistack-esexp-red?wait_for_active_shards=0" % node, "PUT", {"settings": {
            "number_of_shards": 1, "number_of_replicas": 0, "index.routing.allocation.require._name": "no-such-node"}})
        samples = wait_colour(url, "red")
        assert colour(samples) == "red"
        assert sum(v for (name, _), v in samples.items() if name == "elasticsearch_cluster_health_unassigned_shards") >= 2
    finally:
        for index in ("aistack-esexp-yellow", "aistack-esexp-red", "aistack-esexp-docs"):
            request("%s/%s?ignore_unavailable=true" % (node, index), method="DELETE")
    assert colour(wait_colour(url, "green")) == "green"
