"""Read exporters the way Prometheus does, for the exporter integration tests."""
import os
import re
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scrape(url):
    """{(metric name, frozenset of label pairs): value} of one /metrics page (text format)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return parse(response.read().decode())


def parse(text):
    """{(metric name, frozenset of label pairs): value} of a page in the text format."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        assert match, line
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        samples[(match.group(1), labels)] = float(match.group(4))
    return samples


def monitoring_metric_names(rules_file, pattern):
    """Metric names matching ``pattern`` (a regex with one group) in the monitoring role's rules
    template ``rules_file`` (under templates/rules/) and its dashboards (vars/main.yml)."""
    names = set()
    for path in (os.path.join(REPO, "roles", "monitoring", "templates", "rules", rules_file),
                 os.path.join(REPO, "roles", "monitoring", "vars", "main.yml")):
        with open(path) as fh:
            names.update(re.findall(pattern, fh.read()))
    return names
