#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: service_health
short_description: Check services with typed health probes, concurrently
version_added: 0.1.0
description:
  - Runs a list of typed probes (V(http), V(tcp), V(postgres), V(milvus), V(opensearch), V(kafka), V(redis),
    V(docker_container)) concurrently, one thread each, every probe with its own retries and delay,
    all under one overall O(timeout).
  - Returns the status, latency, attempts and detail of every probe and fails (unless O(fail_on_error=false))
    with one message naming every failed probe and why.
  - Every probe definition is validated before any probe runs; an option a probe type does not take, or a
    missing required one, fails naming the probe, the option and the options that type allows.
  - Never changes anything; probes only read (the kafka probe never lets a broker auto-create topics and the
    postgres probe uses a read-only session).
author:
  - aistack.infra maintainers (@aistack)
attributes:
  check_mode:
    support: full
    description: Probes only read, so they also run in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
  idempotent:
    support: full
    description: Never reports C(changed).
options:
  probes:
    description:
      - The probes. Each needs a unique O(probes[].name) and a O(probes[].type); the other options depend on the type.
      - V(http) takes O(probes[].url) (required), O(probes[].method), O(probes[].status), O(probes[].body_contains),
        O(probes[].json_path), O(probes[].json_equals), O(probes[].headers), O(probes[].body), O(probes[].user),
        O(probes[].password) and the TLS options O(probes[].validate_certs), O(probes[].ca_path),
        O(probes[].client_cert), O(probes[].client_key). Redirects are not followed.
      - V(tcp) takes O(probes[].host) and O(probes[].port) (both required) and succeeds when a TCP connection opens.
      - V(postgres) takes O(probes[].host), O(probes[].port), O(probes[].user), O(probes[].password), O(probes[].db),
        O(probes[].ssl_mode), O(probes[].ca_path) and O(probes[].extension); it connects, runs C(SELECT 1) and
        checks that the extension is installed. Needs C(psycopg2) on the target.
      - V(milvus) takes O(probes[].uri) (required), O(probes[].token) or O(probes[].user)/O(probes[].password),
        O(probes[].db) and O(probes[].collection); it reads the server version and checks that the collection
        exists and is loaded. Needs C(pymilvus) on the target.
      - V(opensearch) takes O(probes[].hosts) or O(probes[].url), O(probes[].user), O(probes[].password),
        O(probes[].min_status) and the TLS options; it reads C(GET /_cluster/health).
      - V(kafka) takes O(probes[].bootstrap_servers) (required), O(probes[].topics), O(probes[].security_protocol)
        (or O(probes[].tls)), O(probes[].sasl_mechanism), O(probes[].user), O(probes[].password) and the TLS options
        O(probes[].validate_certs), O(probes[].ca_path), O(probes[].client_cert), O(probes[].client_key). Through
        kafka-python's admin client it reads the cluster (brokers, none fenced) and checks that every topic exists,
        has a leader for each partition and no under-replicated partition (fewer in-sync replicas than replicas).
        It never lets the broker auto-create a topic. A wrong password or an untrusted certificate fails within
        about 3 seconds, with the reason. Needs C(kafka-python) on the target.
      - V(redis) takes O(probes[].host), O(probes[].port), O(probes[].user), O(probes[].password), O(probes[].tls),
        O(probes[].validate_certs) and O(probes[].ca_path); it sends C(AUTH) when a password is given, then C(PING),
        speaking RESP itself.
      - V(docker_container) takes O(probes[].container) (required), O(probes[].docker_host) and O(probes[].expect);
        it inspects the container with the docker SDK when installed, otherwise through the engine API socket.
      - A probe whose client library is missing fails on its own (with what to install); the other probes still run.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unique name of the probe, used in results and messages. Required.
        type: str
      type:
        description:
          - The probe type. Required.
          - One of V(http), V(tcp), V(postgres), V(milvus), V(opensearch), V(kafka), V(redis), V(docker_container).
        type: str
      retries:
        description: Extra attempts after a failure. Defaults to the module's O(retries).
        type: int
      delay:
        description: Seconds between attempts. Defaults to the module's O(delay).
        type: float
      timeout:
        description: Seconds one attempt may take (bounded by what is left of the overall O(timeout)). Default 10.
        type: float
      url:
        description:
          - V(http) - the URL to request (V(http://) or V(https://)).
          - V(opensearch) - one OpenSearch URL (instead of O(probes[].hosts)).
        type: str
      method:
        description: V(http) - request method (V(GET), V(HEAD), V(POST), V(PUT), V(DELETE), V(OPTIONS), V(PATCH)). Default V(GET).
        type: str
      status:
        description: V(http) - expected status code or list of codes. Default V(200).
        type: raw
      body_contains:
        description: V(http) - text the response body must contain.
        type: str
      json_path:
        description:
          - V(http) - dotted path into the JSON response (V(status), V(data.items.0.name)); the value must exist.
        type: str
      json_equals:
        description:
          - V(http) - the value found at O(probes[].json_path) must equal this, with JSON types (quote strings in YAML
            when the service returns strings).
        type: raw
      headers:
        description:
          - V(http) - request headers.
          - Header values are not masked in the task's output; give credentials with O(probes[].user) and
            O(probes[].password) instead of an C(Authorization) header.
        type: dict
      body:
        description: V(http) - request body; a dict or list is sent as JSON.
        type: raw
      validate_certs:
        description:
          - V(http), V(opensearch), V(kafka), V(redis) - verify the server certificate. Default V(true).
          - V(kafka) - with V(true) the broker certificate must also name the host of each address used.
        type: bool
      ca_path:
        description: V(http), V(opensearch), V(kafka), V(redis), V(postgres) - PEM file of the CAs to trust.
        type: path
      client_cert:
        description: V(http), V(opensearch), V(kafka) - PEM client certificate.
        type: path
      client_key:
        description: V(http), V(opensearch), V(kafka) - PEM key of O(probes[].client_cert).
        type: path
      host:
        description: V(tcp) (required), V(postgres), V(redis) (default V(localhost)) - host name or address.
        type: str
      port:
        description: V(tcp) (required), V(postgres) (default 5432), V(redis) (default 6379) - TCP port.
        type: int
      user:
        description:
          - V(http), V(opensearch) - user for basic authentication.
          - V(postgres) - role to log in as (default V(postgres)).
          - V(milvus) - user (with O(probes[].password)).
          - V(redis) - ACL user for C(AUTH).
          - V(kafka) - SASL user (with O(probes[].password)); implies a C(SASL_*) security protocol.
        type: str
      password:
        description: V(http), V(opensearch), V(postgres), V(milvus), V(redis), V(kafka) - password. Never returned.
        type: str
      db:
        description: V(postgres) - database (default V(postgres)); V(milvus) - database name.
        type: str
      tls:
        description:
          - V(kafka), V(redis) - connect with TLS. Default V(false).
          - V(kafka) - short for O(probes[].security_protocol=SSL) (V(SASL_SSL) with O(probes[].user)).
        type: bool
      ssl_mode:
        description:
          - V(postgres) - libpq C(sslmode) (V(disable), V(allow), V(prefer), V(require), V(verify-ca), V(verify-full)).
            Default V(prefer).
        type: str
      extension:
        description: V(postgres) - an extension that must be installed in O(probes[].db) (for example V(vector)).
        type: str
      uri:
        description: V(milvus) - server address, for example V(http://milvus:19530).
        type: str
      token:
        description: V(milvus) - token (V(user:password) or an API key). Never returned.
        type: str
      collection:
        description: V(milvus) - a collection that must exist and be loaded.
        type: str
      hosts:
        description: V(opensearch) - OpenSearch URLs, tried in order.
        type: list
        elements: str
      min_status:
        description: V(opensearch) - lowest acceptable cluster health, V(yellow) (default) or V(green).
        type: str
      bootstrap_servers:
        description: V(kafka) - brokers as V(host:port), tried until one answers.
        type: list
        elements: str
      topics:
        description: V(kafka) - topics that must exist with a leader for every partition and none under-replicated.
        type: list
        elements: str
      security_protocol:
        description:
          - V(kafka) - V(PLAINTEXT), V(SSL), V(SASL_PLAINTEXT) or V(SASL_SSL).
          - Default from O(probes[].tls) and O(probes[].user) - V(SASL_SSL) with both, V(SSL) with O(probes[].tls),
            V(SASL_PLAINTEXT) with O(probes[].user), otherwise V(PLAINTEXT).
        type: str
      sasl_mechanism:
        description: V(kafka) - V(SCRAM-SHA-512) (default), V(SCRAM-SHA-256) or V(PLAIN).
        type: str
      container:
        description: V(docker_container) - container name or id.
        type: str
      docker_host:
        description:
          - V(docker_container) - engine address (V(unix:///var/run/docker.sock), V(tcp://host:2375)).
            Defaults to E(DOCKER_HOST), then the local socket.
        type: str
      expect:
        description:
          - V(docker_container) - V(healthy) needs a healthcheck reporting healthy, V(running) only a running container,
            V(auto) (default) means V(healthy) when the container has a healthcheck and V(running) otherwise.
        type: str
  retries:
    description: Default number of extra attempts for each probe.
    type: int
    default: 0
  delay:
    description: Default seconds between attempts.
    type: float
    default: 1.0
  timeout:
    description:
      - Overall seconds for all probes. A probe still running then is reported as failed.
    type: float
    default: 60.0
  fail_on_error:
    description:
      - Fail the task when a probe fails. With V(false) the task succeeds and RV(healthy) tells the outcome.
    type: bool
    default: true
notes:
  - The V(kafka) probe is tested against a real Kafka 4.3 broker (PLAINTEXT, SSL and SASL_SSL listeners) and the
    V(opensearch) probe against a real OpenSearch 3.5 node (its TLS and authentication against a test double);
    see C(docs/TESTING.md) for how each probe is tested.
requirements:
  - psycopg2 for V(postgres) probes, pymilvus for V(milvus) probes, opensearch-py for V(opensearch) probes,
    kafka-python for V(kafka) probes; the docker SDK is optional.
'''

EXAMPLES = r'''
- name: Check the RAG stack
  aistack.infra.service_health:
    retries: 5
    delay: 2
    timeout: 120
    probes:
      - name: api
        type: http
        url: https://rag.example.org/healthz
        ca_path: /etc/ssl/aistack/ca.pem
        json_path: status
        json_equals: ok
      - name: postgres
        type: postgres
        host: db1
        user: rag
        password: "{{ rag_db_password }}"
        db: rag
        extension: vector
      - name: milvus
        type: milvus
        uri: http://milvus1:19530
        collection: documents
      - name: search
        type: opensearch
        hosts: ["https://search1:9200"]
        user: monitor
        password: "{{ opensearch_monitor_password }}"
        min_status: green
      - name: events
        type: kafka
        bootstrap_servers: ["kafka1:9093", "kafka2:9093"]
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        user: monitor
        password: "{{ kafka_monitor_password }}"
        ca_path: /etc/ssl/aistack/kafka-ca.pem
        topics: [ingest, embeddings]
      - name: cache
        type: redis
        host: cache1
        password: "{{ redis_password }}"
      - name: embedder
        type: docker_container
        container: embedder
      - name: ssh
        type: tcp
        host: bastion
        port: 22

- name: Report without failing
  aistack.infra.service_health:
    fail_on_error: false
    probes:
      - {name: web, type: http, url: "http://localhost:8080/", status: [200, 204]}
  register: health
'''

RETURN = r'''
healthy:
  description: Whether every probe succeeded.
  returned: always
  type: bool
  sample: false
probes:
  description: One entry per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe name.
      type: str
    type:
      description: The probe type.
      type: str
    ok:
      description: Whether the probe succeeded.
      type: bool
    latency_ms:
      description: Duration of the last attempt in milliseconds (null when it did not finish).
      type: float
    attempts:
      description: Attempts made.
      type: int
    detail:
      description: What the probe saw (status code, server version, brokers, health status...); never a password.
      type: dict
    error:
      description: Why the probe failed; null when it succeeded.
      type: str
  sample:
    - {name: api, type: http, ok: true, latency_ms: 12.4, attempts: 1, error: null,
       detail: {url: "https://rag.example.org/healthz", method: GET, status: 200, json_value: ok}}
    - {name: events, type: kafka, ok: false, latency_ms: 3.1, attempts: 6, error: "topic(s) not found: embeddings",
       detail: {bootstrap_servers: ["kafka1:9093"], security_protocol: SASL_SSL, cluster_id: 5Xq1TfXxS8y0jg3Zq3d2Vw,
                controller_id: 1, brokers: ["1@kafka1:9093"], topics: {ingest: 6}}}
duration_ms:
  description: Wall time of the whole run in milliseconds.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aistack.infra.plugins.module_utils._probes import (
    ProbeError,
    ProbeRunner,
    build_probes,
    probe_option_spec,
    summarize,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            probes=dict(type='list', elements='dict', required=True, options=probe_option_spec()),
            retries=dict(type='int', default=0),
            delay=dict(type='float', default=1.0),
            timeout=dict(type='float', default=60.0),
            fail_on_error=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params['retries'] < 0 or params['delay'] < 0 or params['timeout'] <= 0:
            raise ProbeError('retries and delay must be >= 0 and timeout > 0 (got retries=%r, delay=%r, timeout=%r)'
                             % (params['retries'], params['delay'], params['timeout']))
        probes = build_probes(params['probes'], retries=params['retries'], delay=params['delay'])
    except ProbeError as exc:
        module.fail_json(msg=str(exc), changed=False, healthy=False, probes=[])
    results, duration_ms = ProbeRunner(probes, params['timeout']).run()
    summary = summarize(results)
    out = dict(changed=False, healthy=summary is None, probes=results, duration_ms=duration_ms)
    if summary and params['fail_on_error']:
        module.fail_json(msg=summary, **out)
    out['msg'] = summary or 'all %d probe(s) healthy' % len(results)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
