"""The Prometheus JMX exporter java agent in a real Kafka broker, with the logpipeline role's rules.

The agent jar is the one the role fetches (``io.prometheus.jmx:jmx_prometheus_javaagent`` from Maven
Central, the role's default version and checksum), cached under ``${AISTACK_CACHE:-/var/cache/aistack}``
like the Kafka jars. A one-node KRaft broker (``lib.kafka_server``, Maven Central jars) runs with the
agent and ``roles/logpipeline/files/kafka-jmx-exporter.yml``; messages are produced, then every Kafka
metric that aistack.infra.monitoring's alert rules and dashboard read from the broker must be on the
agent's /metrics with the values the broker has (no under-replicated partitions, the messages
produced counted on their topic). Consumer lag (``kafka_consumergroup_lag``) comes from a
consumer-group exporter, not from the broker's MBeans, and is not checked here.
"""
import hashlib
import os
import re
import shutil
import time
import urllib.request

import pytest
import yaml

from lib.kafka_server import KafkaServer, client_config
from lib.milvus_server import free_ports
from lib.prometheus_text import monitoring_metric_names, scrape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(REPO, "roles", "logpipeline", "files", "kafka-jmx-exporter.yml")
CACHE = os.environ.get("AISTACK_CACHE", "/var/cache/aistack")


def role_defaults():
    with open(os.path.join(REPO, "roles", "logpipeline", "defaults", "main.yml")) as fh:
        return yaml.safe_load(fh)


def agent_jar():
    """The role's agent jar (its default version, URL and checksum), downloaded once into the cache."""
    defaults = role_defaults()
    version = defaults["logpipeline_kafka_jmx_exporter_version"]
    algorithm, expected = defaults["logpipeline_kafka_jmx_exporter_checksum"].split(":", 1)
    url = re.sub(r"\{\{\s*logpipeline_kafka_jmx_exporter_version\s*\}\}", version,
                 defaults["logpipeline_kafka_jmx_exporter_url"])
    assert "{{" not in url, url
    path = os.path.join(CACHE, "jmx-exporter", version, "jmx_prometheus_javaagent-%s.jar" % version)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".part"
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(tmp, path)
    with open(path, "rb") as fh:
        digest = hashlib.new(algorithm, fh.read()).hexdigest()
    assert digest == expected, "%s: %s %s, the role expects %s" % (path, algorithm, digest, expected)
    return path


class KafkaWithAgent(KafkaServer):
    """The test broker, its server JVM (not the format tool's) started with the agent on 127.0.0.1."""

    def __init__(self, jar, port):
        super().__init__()
        self.agent = "-javaagent:%s=127.0.0.1:%d:%s" % (jar, port, RULES)

    def _java(self, dist, main, *args, **kwargs):
        command = super()._java(dist, main, *args, **kwargs)
        if main == "kafka.Kafka":
            command.insert(1, self.agent)
        return command


@pytest.fixture(scope="module")
def broker():
    port = free_ports(1)[0]
    server = KafkaWithAgent(agent_jar(), port)
    info = server.start()
    try:
        yield info, "http://127.0.0.1:%d/metrics" % port
    finally:
        server.stop()


def monitoring_broker_metrics():
    """Names of the broker metrics (kafka_server_*, kafka_controller_*) in the monitoring role's rules and dashboard."""
    return monitoring_metric_names('kafka.rules.yml.j2', r"\b(kafka_(?:server|controller)_[a-z_]+)")


def test_agent_serves_the_metrics_the_monitoring_role_reads(broker):
    from kafka import KafkaProducer

    info, url = broker
    producer = KafkaProducer(**client_config(info))
    for i in range(25):
        producer.send("aistack-jmx-test", b"message %d" % i)
    producer.flush(timeout=30)
    producer.close()

    # The meters count at once; give the agent's MBean cache a moment.
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(url)
        produced = samples.get(("kafka_server_brokertopicmetrics_messagesin_total",
                                frozenset({("topic", "aistack-jmx-test")})), 0)
        if produced >= 25 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert produced == 25, sorted(k for k in samples if k[0].startswith("kafka_server_brokertopicmetrics"))

    names = {name for name, _ in samples}
    wanted = monitoring_broker_metrics()
    assert "kafka_server_replicamanager_underreplicatedpartitions" in wanted
    assert wanted <= names, "not served by the agent: %s" % sorted(wanted - names)
    assert samples[("kafka_server_replicamanager_underreplicatedpartitions", frozenset())] == 0
    assert samples[("kafka_controller_kafkacontroller_activecontrollercount", frozenset())] == 1
    assert samples[("kafka_controller_kafkacontroller_offlinepartitionscount", frozenset())] == 0
    # Only the MBeans the rules select (plus the agent's JVM metrics): a cheap scrape.
    kafka_names = {name for name in names if name.startswith("kafka_")}
    assert all(name.startswith(("kafka_server_replicamanager_", "kafka_server_brokertopicmetrics_",
                                "kafka_controller_kafkacontroller_")) for name in kafka_names), sorted(kafka_names)
