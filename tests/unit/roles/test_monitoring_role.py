# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role: invalid variables fail in preflight, naming the variable, before any change;
prometheus.yml, the file_sd targets (from an inventory with the stack's groups), alertmanager.yml,
blackbox.yml, the web configuration and Grafana's provisioning render as documented and pass the
services' own checkers (promtool, amtool); and every alert rule passes its `promtool test rules`
unit test (files/rule_tests/, run against the rules rendered with the role's defaults).

Real ansible-playbook runs against localhost (tests/lib/ansible_run.py). promtool and amtool come
from Debian's prometheus and prometheus-alertmanager packages (tools/system-deps.sh); the running
services are tested by molecule/monitoring.
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml
from lib.ansible_run import REPO, preflight_suite, run_playbook

ROLE = os.path.join(REPO, "roles", "monitoring")
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run tools/system-deps.sh")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool missing: run tools/system-deps.sh")

GRAFANA_PASSWORD = "Grafana-admin-7d1c44e0"
PG_PASSWORD = "Monitor-pg-3f9a21b7c"
REDIS_PASSWORD = "Monitor-redis-5c2e81aa"
MYSQLD_PASSWORD = "Monitor-mysqld-a81f03d2"
SLACK_URL = "https://hooks.slack.test/services/T000/B000/s3cr3t-slack-token"
SMTP_PASSWORD = "smtp-S3cret-9921"
VALID = {
    "monitoring_server_enabled": True,
    "monitoring_exporters": ["node", "postgres"],
    "monitoring_exporter_bind_address": "10.0.0.5",
    "monitoring_grafana_admin_password": GRAFANA_PASSWORD,
    "monitoring_postgres_exporter_password": PG_PASSWORD,
}
RECEIVERS = {
    "monitoring_alertmanager_receivers": [
        {"name": "ops-mail", "type": "email", "to": "ops@example.org"},
        {"name": "ops-hook", "type": "webhook", "url": "https://hooks.example.org/alertmanager"},
        {"name": "ops-slack", "type": "slack", "api_url": SLACK_URL, "channel": "#alerts"},
    ],
    "monitoring_alertmanager_smtp_smarthost": "smtp.example.org:587",
    "monitoring_alertmanager_smtp_from": "alertmanager@example.org",
    "monitoring_alertmanager_smtp_auth_username": "alertmanager",
    "monitoring_alertmanager_smtp_auth_password": SMTP_PASSWORD,
    "monitoring_alertmanager_routes": [{"receiver": "ops-slack", "matchers": ['severity="critical"'], "continue": True}],
}
SECRETS = (GRAFANA_PASSWORD, PG_PASSWORD, SLACK_URL, SMTP_PASSWORD, REDIS_PASSWORD, MYSQLD_PASSWORD)


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "valid-receivers": (_with(**RECEIVERS), None),
    "valid-exporters-only-host": (_with(monitoring_server_enabled=False, monitoring_grafana_admin_password=""), None),
    "valid-grafana-off-without-password": (_with(monitoring_grafana_enabled=False, monitoring_grafana_admin_password=""), None),
    "valid-off-loopback-with-tls": (_with(monitoring_bind_address="10.0.0.5", monitoring_prometheus_web_config={
        "tls_server_config": {"cert_file": "/etc/prometheus/tls.crt", "key_file": "/etc/prometheus/tls.key"}}), None),
    "valid-alert-overrides": (_with(monitoring_alert_for={"postgres_down": "30s"},
                                    monitoring_alert_thresholds={"certificate_days": 21}), None),
    "unknown-exporter": (_with(monitoring_exporters=["node", "mongodb"]),
                         ["monitoring_exporters: unknown exporter mongodb (known: node, postgres, nginx, opensearch, redis, mysqld, dcgm)"]),
    "valid-redis-mysqld": (_with(monitoring_exporters=["node", "redis", "mysqld"], monitoring_redis_exporter_password=REDIS_PASSWORD,
                                 monitoring_mysqld_exporter_password=MYSQLD_PASSWORD), None),
    "redis-password-missing": (_with(monitoring_exporters=["node", "redis"]),
                               ["monitoring_redis_exporter_password is missing or empty (set it from the vault)"]),
    "mysqld-password-missing": (_with(monitoring_exporters=["node", "mysqld"]),
                                ["monitoring_mysqld_exporter_password is missing or empty (set it from the vault)"]),
    "mysqld-password-quote": (_with(monitoring_exporters=["node", "mysqld"], monitoring_mysqld_exporter_password='Monitor"quote-123'),
                              ["monitoring_mysqld_exporter_password may not contain a double quote, a backslash or a line break"]),
    "redis-address": (_with(monitoring_exporters=["node", "redis"], monitoring_redis_exporter_password=REDIS_PASSWORD,
                            monitoring_redis_exporter_address="aistack-redis:6379"),
                      ["monitoring_redis_exporter_address must be a redis:// or rediss:// URL (is aistack-redis:6379)"]),
    "scrape-interval": (_with(monitoring_scrape_interval="30 seconds"),
                        ["monitoring_scrape_interval is not a Prometheus duration such as 30s, 5m, 1h30m (is 30 seconds)"]),
    "evaluation-interval": (_with(monitoring_evaluation_interval="1.5m"),
                            ["monitoring_evaluation_interval is not a Prometheus duration"]),
    "alert-for-duration": (_with(monitoring_alert_for={"postgres_down": "soon"}),
                           ["monitoring_alert_for.postgres_down is not a Prometheus duration"]),
    "alert-for-unknown": (_with(monitoring_alert_for={"pg_down": "1m"}),
                          ["monitoring_alert_for: unknown alert setting pg_down (known: ai_consumer_lag", "postgres_down"]),
    "threshold-not-a-number": (_with(monitoring_alert_thresholds={"disk_used_ratio": "ninety"}),
                               ["monitoring_alert_thresholds.disk_used_ratio must be a number (is ninety)"]),
    "threshold-unknown": (_with(monitoring_alert_thresholds={"disk": 1}), ["monitoring_alert_thresholds: unknown threshold disk"]),
    "retention-size": (_with(monitoring_prometheus_retention_size="10 gigs"),
                       ["monitoring_prometheus_retention_size must be a size such as 512MB or 10GB (is 10 gigs)"]),
    "webhook-without-url": (_with(monitoring_alertmanager_receivers=[{"name": "hook", "type": "webhook"}]),
                            ["monitoring_alertmanager_receivers: hook (webhook) needs url: an http(s):// URL"]),
    "email-without-smtp": (_with(monitoring_alertmanager_receivers=[{"name": "mail", "type": "email", "to": "ops@example.org"}]),
                           ["mail (email) needs monitoring_alertmanager_smtp_smarthost (host:port) and monitoring_alertmanager_smtp_from"]),
    "email-without-to": (_with(**dict(RECEIVERS, monitoring_alertmanager_receivers=[{"name": "mail", "type": "email"}])),
                         ["monitoring_alertmanager_receivers: mail (email) needs to: an e-mail address"]),
    "slack-without-api-url": (_with(monitoring_alertmanager_receivers=[{"name": "chat", "type": "slack", "channel": "#a"}]),
                              ["monitoring_alertmanager_receivers: chat (slack) needs api_url (from the vault)"]),
    "slack-without-channel": (_with(monitoring_alertmanager_receivers=[{"name": "chat", "type": "slack", "api_url": SLACK_URL}]),
                              ["monitoring_alertmanager_receivers: chat (slack) needs channel"]),
    "receiver-type": (_with(monitoring_alertmanager_receivers=[{"name": "pager", "type": "pagerduty"}]),
                      ["value of type must be one of: email, webhook, slack"]),
    "receiver-names-repeated": (_with(monitoring_alertmanager_receivers=[{"name": "h", "type": "webhook", "url": "http://a/"},
                                                                        {"name": "h", "type": "webhook", "url": "http://b/"}]),
                                ["receiver names must be unique"]),
    "default-receiver-unknown": (_with(monitoring_alertmanager_default_receiver="nobody"),
                                 ["monitoring_alertmanager_default_receiver nobody is not a receiver (default)"]),
    "route-receiver-unknown": (_with(monitoring_alertmanager_routes=[{"receiver": "ghost"}]),
                               ["monitoring_alertmanager_routes: receiver ghost is not a receiver (default)"]),
    "smtp-password-missing": (_with(**dict(RECEIVERS, monitoring_alertmanager_smtp_auth_password="")),
                              ["monitoring_alertmanager_smtp_auth_password is missing or empty (set it from the vault)"]),
    "grafana-password-missing": (_with(monitoring_grafana_admin_password=""),
                                 ["monitoring_grafana_admin_password is missing or empty (set it from the vault)"]),
    "grafana-password-admin": (_with(monitoring_grafana_admin_password="admin"),
                               ["monitoring_grafana_admin_password is left at a placeholder or a well-known default"]),
    "grafana-password-short": (_with(monitoring_grafana_admin_password="Sh0rt-pw"),
                               ["monitoring_grafana_admin_password is shorter than 12 characters"]),
    "postgres-password-missing": (_with(monitoring_postgres_exporter_password=""),
                                  ["monitoring_postgres_exporter_password is missing or empty (set it from the vault)"]),
    "exporter-bind-loopback": (_with(monitoring_exporter_bind_address="127.0.0.1"),
                               ["monitoring_exporter_bind_address is loopback (127.0.0.1): Prometheus runs in a container"]),
    "exporter-bind-wildcard": (_with(monitoring_exporter_bind_address="0.0.0.0"),
                               ["monitoring_exporter_bind_address may not be a wildcard address"]),
    "bind-wildcard": (_with(monitoring_bind_address="0.0.0.0"), ["monitoring_bind_address may not be a wildcard address"]),
    "bind-hostname": (_with(monitoring_bind_address="localhost"),
                      ["monitoring_bind_address must be an IPv4 or IPv6 address, not a host name (is localhost)"]),
    "bind-private-without-tls": (_with(monitoring_bind_address="10.0.0.5"),
                                 ["monitoring_bind_address 10.0.0.5 is not loopback: set monitoring_prometheus_web_config.tls_server_config"]),
    "blackbox-plain-http": (_with(monitoring_blackbox_targets=["http://rag.example.org"]),
                            ["monitoring_blackbox_targets: http://rag.example.org is not an https:// URL"]),
    "blackbox-ca-relative": (_with(monitoring_blackbox_ca_file="certs/ca.pem"),
                             ["monitoring_blackbox_ca_file must be an absolute path on the monitoring server (is certs/ca.pem)"]),
    "several-problems-at-once": (_with(monitoring_exporters=["statsd"], monitoring_scrape_timeout="10"),
                                 ["unknown exporter statsd", "monitoring_scrape_timeout is not a Prometheus duration"]),
}


PREFLIGHT = {"Validating arguments against arg spec", "Judge the secrets", "Assert that every secret",
             "Assert that the exporters", "Assert that the Alertmanager receivers"}
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("monitoring", CASES, PREFLIGHT, SECRETS)


# --- Rendering, with an inventory of the whole stack ------------------------------------------------

INVENTORY = {
    "all": {
        "hosts": {"localhost": {"ansible_connection": "local", "aistack_bind_address": "10.0.0.2"}},
        "children": {
            "monitoring_servers": {"hosts": {"localhost": {}}},
            "pgvector_servers": {"hosts": {"db1": {"aistack_bind_address": "10.0.0.11"},
                                           "db2": {"monitoring_scrape_address": "fd00::12"}}},
            "milvus_servers": {"hosts": {"vec1": {"ansible_host": "10.0.0.21"}}},
            "web_servers": {"hosts": {"web1": {"aistack_bind_address": "10.0.0.31"}}},
            # The log pipeline: OpenSearch exporter targets on every host, Kafka only where the broker
            # runs the JMX exporter agent (aistack.infra.logpipeline's variable).
            "logpipeline_servers": {"hosts": {"kafka1": {"aistack_bind_address": "10.0.0.41",
                                                         "logpipeline_kafka_jmx_exporter_enabled": True},
                                              "log2": {"aistack_bind_address": "10.0.0.42"},
                                              # Its inventory runs no OpenSearch exporter there: no target.
                                              "log3": {"aistack_bind_address": "10.0.0.43",
                                                       "monitoring_exporters": ["node"]}}},
            "gpu_servers": {"hosts": {}},
            # aistack.infra.redis / aistack.infra.mariadb hosts: their exporters run there.
            "redis_servers": {"hosts": {"cache1": {"aistack_bind_address": "10.0.0.51"}}},
            "mariadb_servers": {"hosts": {"sql1": {"aistack_bind_address": "10.0.0.52"}}},
            # The group name before mariadb_servers was the convention: no longer a mysqld target.
            "mysql_servers": {"hosts": {"oldsql": {"aistack_bind_address": "10.0.0.53"}}},
        },
    },
}
TEMPLATES = ["prometheus.yml", "alertmanager.yml", "blackbox.yml", "web.yml", "grafana-datasources.yml",
             "grafana-dashboards.yml"]


def _render(variables):
    """Render every template of the role (rules and dashboards included) and the file_sd targets on
    localhost, a member of monitoring_servers in INVENTORY. Returns the output directory."""
    out = tempfile.mkdtemp(prefix="monitoring-render-")
    for sub in ("rules", "rule_tests", "dashboards", "file_sd"):
        os.makedirs(os.path.join(out, sub))
    tasks = [{"name": "render " + name, "ansible.builtin.template": {
        "src": os.path.join(ROLE, "templates", name + ".j2"), "dest": os.path.join(out, name), "mode": "0644"}}
        for name in TEMPLATES]
    tasks += [
        {"name": "render rules", "loop": "{{ _monitoring_rule_files }}", "ansible.builtin.template": {
            "src": ROLE + "/templates/rules/{{ item }}.rules.yml.j2", "dest": out + "/rules/{{ item }}.rules.yml",
            "mode": "0644"}},
        {"name": "render dashboards", "loop": "{{ _monitoring_dashboards.keys() | list }}",
         "loop_control": {"loop_var": "_monitoring_dashboard_part"}, "ansible.builtin.template": {
             "src": ROLE + "/templates/grafana-dashboard.json.j2", "mode": "0644",
             "dest": out + "/dashboards/aistack-{{ _monitoring_dashboard_part }}.json"}},
        {"name": "file_sd", "loop": "{{ _monitoring_file_sd.keys() | list }}", "ansible.builtin.copy": {
            "content": "{{ _monitoring_file_sd[item] | to_nice_json }}", "dest": out + "/file_sd/{{ item }}.json",
            "mode": "0644"}},
        {"name": "computed", "ansible.builtin.copy": {"dest": out + "/computed.json", "mode": "0644", "content": (
            "{{ {'command': _monitoring_prometheus_command, 'images': _monitoring_images_wanted,"
            " 'prometheus_url': _monitoring_prometheus_url, 'exporters': monitoring_exporters,"
            " 'mysqld_cnf': _monitoring_mysqld_exporter_cnf, 'dcgm_csv': _monitoring_dcgm_counters_csv} | to_json }}")}},
    ]
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
             "tasks": tasks}]
    inventory = os.path.join(out, "inventory.yml")
    with open(inventory, "w", encoding="utf-8") as fh:
        yaml.safe_dump(INVENTORY, fh)
    extra = os.path.join(out, "extra-vars.json")
    with open(extra, "w", encoding="utf-8") as fh:
        json.dump(variables, fh)
    proc = run_playbook(play, "-i", inventory, "-e", "@" + extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name in os.listdir(os.path.join(ROLE, "files", "rule_tests")):
        shutil.copy(os.path.join(ROLE, "files", "rule_tests", name), os.path.join(out, "rule_tests", name))
    return out


def _load(out, name):
    with open(os.path.join(out, name), encoding="utf-8") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def rendered():
    # monitoring_exporters is left to each host (an extra var would set it on every host, and the
    # OpenSearch job follows the hosts whose exporters include opensearch): localhost runs node only.
    variables = {k: v for k, v in VALID.items() if k != "monitoring_exporters"}
    out = _render(dict(variables, **RECEIVERS, monitoring_blackbox_targets=["https://rag.example.org"],
                       monitoring_bluegreen_targets=[{"url": "http://10.0.0.31:8001/health", "slot": "blue"}],
                       monitoring_external_labels={"site": "lab"}))
    yield out
    shutil.rmtree(out)


def test_prometheus_config(rendered):
    text = _load(rendered, "prometheus.yml")
    assert text.startswith("#\n# Ansible managed")
    conf = yaml.safe_load(text)
    assert conf["global"] == {"scrape_interval": "30s", "scrape_timeout": "10s", "evaluation_interval": "30s",
                              "external_labels": {"site": "lab"}}
    assert conf["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert conf["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["aistack-alertmanager:9093"]
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    # Configuration-only jobs appear when their group has hosts: kafka yes, gpu_servers (empty) no.
    assert sorted(jobs) == ["alertmanager", "blackbox_https", "bluegreen", "kafka", "milvus", "mysqld", "nginx", "node",
                            "opensearch", "postgres", "prometheus", "redis"]
    assert jobs["postgres"]["file_sd_configs"] == [{"files": ["/etc/prometheus/file_sd/postgres.json"]}]
    assert jobs["blackbox_https"]["params"] == {"module": ["https_cert"]}
    assert jobs["blackbox_https"]["relabel_configs"][-1] == {"target_label": "__address__",
                                                             "replacement": "aistack-blackbox-exporter:9115"}


def test_file_sd_targets_follow_the_inventory(rendered):
    def targets(job):
        return json.loads(_load(rendered, "file_sd/%s.json" % job))
    # node on every host of monitoring_targets_groups (all), at its scrape address.
    node = {entry["labels"]["instance"]: entry["targets"] for entry in targets("node")}
    assert node == {"localhost": ["10.0.0.2:9100"], "db1": ["10.0.0.11:9100"], "db2": ["[fd00::12]:9100"],
                    "vec1": ["10.0.0.21:9100"], "web1": ["10.0.0.31:9100"], "kafka1": ["10.0.0.41:9100"],
                    "log2": ["10.0.0.42:9100"], "log3": ["10.0.0.43:9100"], "cache1": ["10.0.0.51:9100"],
                    "sql1": ["10.0.0.52:9100"], "oldsql": ["10.0.0.53:9100"]}
    assert targets("postgres") == [{"targets": ["10.0.0.11:9187"], "labels": {"instance": "db1"}},
                                   {"targets": ["[fd00::12]:9187"], "labels": {"instance": "db2"}}]
    assert targets("milvus") == [{"targets": ["10.0.0.21:9091"], "labels": {"instance": "vec1"}}]
    assert targets("nginx") == [{"targets": ["10.0.0.31:9113"], "labels": {"instance": "web1"}}]
    assert targets("kafka") == [{"targets": ["10.0.0.41:7071"], "labels": {"instance": "kafka1"}}]
    assert targets("opensearch") == [{"targets": ["10.0.0.41:9114"], "labels": {"instance": "kafka1"}},
                                     {"targets": ["10.0.0.42:9114"], "labels": {"instance": "log2"}}]
    assert targets("redis") == [{"targets": ["10.0.0.51:9121"], "labels": {"instance": "cache1"}}]
    assert targets("mysqld") == [{"targets": ["10.0.0.52:9104"], "labels": {"instance": "sql1"}}]
    assert targets("blackbox_https") == [{"targets": ["https://rag.example.org"]}]
    assert targets("bluegreen") == [{"targets": ["http://10.0.0.31:8001/health"], "labels": {"slot": "blue"}}]
    assert not os.path.exists(os.path.join(rendered, "file_sd", "dcgm.json"))


@needs_promtool
def test_promtool_accepts_the_config(rendered):
    """promtool resolves the file_sd paths under /etc/prometheus: check a copy pointing here."""
    text = _load(rendered, "prometheus.yml").replace("/etc/prometheus/", rendered + "/")
    path = os.path.join(rendered, "prometheus-local.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    proc = subprocess.run([PROMTOOL, "check", "config", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 rule files found" in proc.stdout


def test_prometheus_command(rendered):
    computed = json.loads(_load(rendered, "computed.json"))
    assert computed["command"] == [
        "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
        "--storage.tsdb.retention.time=15d", "--storage.tsdb.retention.size=10GB",
        "--web.listen-address=:9090", "--web.enable-lifecycle"]
    assert computed["prometheus_url"] == "http://127.0.0.1:9090"
    assert computed["images"] == [
        "docker.io/prom/prometheus:v3.13.2", "docker.io/prom/alertmanager:v0.28.1",
        "docker.io/prom/blackbox-exporter:v0.27.0", "docker.io/grafana/grafana:12.0.2",
        "docker.io/prom/node-exporter:v1.9.1"]


def test_alertmanager_config(rendered):
    conf = yaml.safe_load(_load(rendered, "alertmanager.yml"))
    assert conf["global"] == {"smtp_smarthost": "smtp.example.org:587", "smtp_from": "alertmanager@example.org",
                              "smtp_require_tls": True, "smtp_auth_username": "alertmanager",
                              "smtp_auth_password": SMTP_PASSWORD}
    assert conf["route"]["receiver"] == "ops-mail"
    assert conf["route"]["group_by"] == ["alertname", "instance"]
    assert conf["route"]["routes"] == [{"receiver": "ops-slack", "matchers": ['severity="critical"'], "continue": True}]
    assert conf["receivers"] == [
        {"name": "ops-mail", "email_configs": [{"to": "ops@example.org", "send_resolved": True}]},
        {"name": "ops-hook", "webhook_configs": [{"url": "https://hooks.example.org/alertmanager", "send_resolved": True}]},
        {"name": "ops-slack", "slack_configs": [{"api_url": SLACK_URL, "channel": "#alerts", "send_resolved": True}]}]
    assert conf["inhibit_rules"][0] == {"source_matchers": ['severity="critical"'],
                                        "target_matchers": ['severity="warning"'], "equal": ["alertname", "instance"]}


@needs_amtool
def test_amtool_accepts_the_config(rendered):
    proc = subprocess.run([AMTOOL, "check-config", os.path.join(rendered, "alertmanager.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 receivers" in proc.stdout and "2 inhibit rules" in proc.stdout


@needs_amtool
def test_amtool_accepts_the_default_config():
    """No receivers: one that sends nothing, so alerts still show in Alertmanager's API."""
    out = _render(dict(VALID))
    try:
        conf = yaml.safe_load(_load(out, "alertmanager.yml"))
        assert conf["receivers"] == [{"name": "default"}] and conf["route"]["receiver"] == "default"
        assert conf["global"] == {}
        proc = subprocess.run([AMTOOL, "check-config", os.path.join(out, "alertmanager.yml")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(out)


def test_grafana_provisioning(rendered):
    datasources = yaml.safe_load(_load(rendered, "grafana-datasources.yml"))
    assert datasources["datasources"] == [{
        "name": "Prometheus", "uid": "aistack-prometheus", "type": "prometheus", "access": "proxy",
        "url": "http://aistack-prometheus:9090", "isDefault": True, "editable": False,
        "jsonData": {"timeInterval": "30s"}}]
    providers = yaml.safe_load(_load(rendered, "grafana-dashboards.yml"))["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"


@needs_promtool
def test_dashboards_are_valid_and_every_query_parses(rendered):
    """One dashboard per part, each panel on the provisioned datasource with a PromQL expression that
    Prometheus' parser accepts (checked by promtool as a recording rule of a throwaway rule file)."""
    parts = sorted(os.path.basename(p)[len("aistack-"):-len(".json")]
                   for p in glob.glob(os.path.join(rendered, "dashboards", "*.json")))
    assert parts == ["gpus", "hosts", "kafka", "milvus", "nginx", "opensearch", "postgresql"]
    rules = []
    for part in parts:
        board = json.loads(_load(rendered, "dashboards/aistack-%s.json" % part))
        assert board["uid"] == "aistack-" + part
        assert board["panels"], part
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "aistack-prometheus"}
            assert [t["datasource"]["uid"] for t in panel["targets"]] == ["aistack-prometheus"]
            rules.extend({"record": "dashboard:%s:%d" % (part, panel["id"]), "expr": t["expr"]} for t in panel["targets"])
    path = os.path.join(rendered, "dashboard-queries.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, fh)
    proc = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: %d rules found" % len(rules) in proc.stdout


@needs_promtool
def test_alert_rules_pass_their_unit_tests(rendered):
    """Every rule file of the role has its test file, and promtool runs them all green."""
    rule_files = sorted(os.listdir(os.path.join(rendered, "rules")))
    test_files = sorted(os.listdir(os.path.join(rendered, "rule_tests")))
    assert [f[:-len(".rules.yml")] for f in rule_files] == [f[:-len(".test.yml")] for f in test_files]
    proc = subprocess.run([PROMTOOL, "test", "rules"] + test_files, capture_output=True, text=True,
                          cwd=os.path.join(rendered, "rule_tests"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(test_files)


def test_every_alert_has_a_unit_test(rendered):
    """Each alert name of the rules appears in an alert_rule_test of its test file."""
    for name in os.listdir(os.path.join(rendered, "rules")):
        rules = yaml.safe_load(_load(rendered, "rules/" + name))
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
        tests = yaml.safe_load(_load(rendered, "rule_tests/" + name.replace(".rules.yml", ".test.yml")))
        tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])
                  if t.get("exp_alerts")}
        assert alerts == tested, name


def test_blackbox_modules(rendered):
    modules = yaml.safe_load(_load(rendered, "blackbox.yml"))["modules"]
    assert modules["https_cert"]["http"]["fail_if_not_ssl"] is True
    assert modules["http_health"]["http"]["valid_status_codes"] == [200]
    # Without a CA file or server name the probes verify against the image's system CAs.
    assert "tls_config" not in modules["https_cert"]["http"] and "headers" not in modules["https_cert"]["http"]


def test_blackbox_ca_file_and_server_name():
    """A private CA (or a self-signed certificate) and an SNI name reach the https_cert module; the file
    is mounted in the exporter's config folder, and blackbox_exporter itself accepts the config."""
    out = _render(dict(VALID, monitoring_blackbox_targets=["https://10.0.0.7/healthz"],
                       monitoring_blackbox_ca_file="/etc/ssl/nginx/aistack.crt",
                       monitoring_blackbox_tls_server_name="rag.example.org"))
    try:
        http = yaml.safe_load(_load(out, "blackbox.yml"))["modules"]["https_cert"]["http"]
        assert http["tls_config"] == {"ca_file": "/etc/blackbox_exporter/ca.pem", "server_name": "rag.example.org"}
        assert http["headers"] == {"Host": "rag.example.org"}
        assert http["fail_if_not_ssl"] is True and http["valid_status_codes"] == []
    finally:
        shutil.rmtree(out)


def test_web_config_and_tls_url():
    out = _render(dict(VALID, monitoring_bind_address="10.0.0.5", monitoring_prometheus_web_config={
        "tls_server_config": {"cert_file": "/etc/prometheus/tls.crt", "key_file": "/etc/prometheus/tls.key",
                              "min_version": "TLS12"}}))
    try:
        assert yaml.safe_load(_load(out, "web.yml"))["tls_server_config"]["min_version"] == "TLS12"
        computed = json.loads(_load(out, "computed.json"))
        assert computed["command"][-1] == "--web.config.file=/etc/prometheus/web.yml"
        assert computed["prometheus_url"] == "https://10.0.0.5:9090"
        conf = yaml.safe_load(_load(out, "prometheus.yml"))
        self_job = [j for j in conf["scrape_configs"] if j["job_name"] == "prometheus"][0]
        assert self_job["scheme"] == "https"
    finally:
        shutil.rmtree(out)


def test_default_exporters_follow_the_groups():
    """Without monitoring_exporters: node everywhere, postgres on pgvector hosts, nginx on web hosts."""
    variables = dict(VALID)
    del variables["monitoring_exporters"]
    out = _render(variables)
    try:
        assert json.loads(_load(out, "computed.json"))["exporters"] == ["node"]
    finally:
        shutil.rmtree(out)


def test_exporters_beside_their_services_and_the_ai_consumer_job():
    """Where the redis, mariadb and gpu roles run (one render): the exporters' images; mysqld_exporter's
    client file naming the mariadb role's monitoring account on its container; the DCGM exporter's
    collectors file holding every DCGM field of the GPU rules and dashboard; and a blue-green slot with
    metrics: true scraped on its own /metrics (job ai_consumer)."""
    import re
    out = _render(_with(monitoring_exporters=["node", "redis", "mysqld", "dcgm"], monitoring_redis_exporter_password=REDIS_PASSWORD,
                        monitoring_mysqld_exporter_password=MYSQLD_PASSWORD, mariadb_monitoring_user="dbmon",
                        monitoring_bluegreen_targets=[{"url": "http://10.0.0.31:8101/health", "slot": "blue", "metrics": True},
                                                      {"url": "http://10.0.0.31:8102/health", "slot": "green"}]))
    try:
        computed = json.loads(_load(out, "computed.json"))
        assert computed["images"][-3:] == ["docker.io/oliver006/redis_exporter:v1.67.0", "docker.io/prom/mysqld-exporter:v0.18.0",
                                           "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04"]
        assert computed["mysqld_cnf"] == ('[client]\nuser = dbmon\npassword = "%s"\nhost = aistack-mariadb\nport = 3306\n'
                                          % MYSQLD_PASSWORD)
        rows = [line.split(", ") for line in computed["dcgm_csv"].splitlines() if line and not line.startswith("#")]
        assert rows and all(len(row) == 3 and row[1] in ("gauge", "counter") for row in rows), rows
        used = set()
        for path in (os.path.join(ROLE, "templates", "rules", "gpu.rules.yml.j2"), os.path.join(ROLE, "vars", "main.yml")):
            with open(path, encoding="utf-8") as fh:
                used.update(re.findall(r"\b(DCGM_FI_[A-Z0-9_]+)", fh.read()))
        assert {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"} <= used
        assert used <= {row[0] for row in rows}, sorted(used - {row[0] for row in rows})
        # The slot with metrics: its /metrics at the health URL's address; the other slot is probed only.
        assert json.loads(_load(out, "file_sd/ai_consumer.json")) == [{"targets": ["10.0.0.31:8101"], "labels": {"slot": "blue"}}]
        jobs = {job["job_name"]: job for job in yaml.safe_load(_load(out, "prometheus.yml"))["scrape_configs"]}
        assert jobs["ai_consumer"] == {"job_name": "ai_consumer",
                                       "file_sd_configs": [{"files": ["/etc/prometheus/file_sd/ai_consumer.json"]}]}
        assert len(json.loads(_load(out, "file_sd/bluegreen.json"))) == 2
    finally:
        shutil.rmtree(out)
