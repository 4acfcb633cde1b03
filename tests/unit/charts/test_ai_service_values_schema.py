"""charts/ai-service/values.schema.json, checked with jsonschema's Draft 7 validator (the draft the
schema declares; helm validates values against the same schema before it renders anything).

The chart's behaviour on a real API server is tests/integration/test_k8s_chart.py; this file runs
where helm and the control plane are not built."""
import copy
import json
import os

import jsonschema
import pytest
import yaml

CHART = os.path.join(os.path.dirname(__file__), "..", "..", "..", "charts", "ai-service")


@pytest.fixture(scope="module")
def schema():
    with open(os.path.join(CHART, "values.schema.json")) as fh:
        doc = json.load(fh)
    jsonschema.Draft7Validator.check_schema(doc)
    return doc


@pytest.fixture(scope="module")
def defaults():
    with open(os.path.join(CHART, "values.yaml")) as fh:
        return yaml.safe_load(fh)


def errors(schema, values):
    return [(list(e.absolute_path), e.message) for e in jsonschema.Draft7Validator(schema).iter_errors(values)]


def with_value(values, path, value):
    doc = copy.deepcopy(values)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def test_defaults_are_valid_and_safe(schema, defaults):
    assert errors(schema, defaults) == []
    assert defaults["rollingUpdate"]["maxUnavailable"] == 0
    assert defaults["securityContext"]["readOnlyRootFilesystem"] is True
    assert defaults["podSecurityContext"]["runAsNonRoot"] is True and defaults["podSecurityContext"]["runAsUser"] > 0
    assert defaults["secretEnv"] == {}  # no credentials in the chart


@pytest.mark.parametrize("path, value, field", [
    (("replicaCount",), 0, ["replicaCount"]),
    (("autoscaling", "minReplicas"), 0, ["autoscaling", "minReplicas"]),
    (("rollingUpdate", "maxUnavailable"), 1, ["rollingUpdate", "maxUnavailable"]),
    (("podSecurityContext", "runAsNonRoot"), False, ["podSecurityContext", "runAsNonRoot"]),
    (("podSecurityContext", "runAsUser"), 0, ["podSecurityContext", "runAsUser"]),
    (("securityContext", "readOnlyRootFilesystem"), False, ["securityContext", "readOnlyRootFilesystem"]),
    (("securityContext", "allowPrivilegeEscalation"), True, ["securityContext", "allowPrivilegeEscalation"]),
    (("ingress", "tlsSecretName"), "Not_A_Name", ["ingress", "tlsSecretName"]),
    (("ingress", "host"), "https://ai.example", ["ingress", "host"]),
    (("image", "tag"), "", ["image", "tag"]),
    (("healthPath",), "health", ["healthPath"]),
    (("service", "type"), "ExternalName", ["service", "type"]),
    (("resources", "requests", "cpu"), "lots", ["resources", "requests", "cpu"]),
    (("env",), {"not-a-variable": "x"}, ["env"]),
    (("secretEnv",), {"DATABASE_URL": {"secret": "db"}}, ["secretEnv", "DATABASE_URL"]),
    (("replicas",), 3, []),  # an unknown key (a typo of replicaCount) is refused, not ignored
])
def test_bad_values_are_refused(schema, defaults, path, value, field):
    found = errors(schema, with_value(defaults, path, value))
    assert found, "the schema accepted %s=%r" % (".".join(path), value)
    assert any(p == field for p, _m in found), found


def test_resources_accept_kubernetes_quantities(schema, defaults):
    for cpu, memory in (("500m", "256Mi"), (2, "1Gi"), ("1.5", "512M")):
        values = with_value(defaults, ("resources", "requests"), {"cpu": cpu, "memory": memory})
        assert errors(schema, values) == []
