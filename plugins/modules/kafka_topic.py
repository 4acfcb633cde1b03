#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: kafka_topic
short_description: Ensure a Kafka topic with its partitions, replication factor and configs
version_added: 0.1.0
description:
  - Creates, updates or deletes one Kafka topic through kafka-python's admin client.
  - Idempotency compares the whole definition - partition count, replication factor and the value of every
    config given in O(configs) - never the name alone.
  - Partitions can only be added; a lower O(partitions) fails and says why. A different O(replication_factor)
    fails unless O(allow_reassignment=true), which reassigns every partition's replicas.
  - Configs are changed incrementally (C(IncrementalAlterConfigs)) - only the keys given in O(configs) are set
    or, with a null value, reset to the broker default; every other topic config stays as it is.
  - Everything is validated before anything is changed - the topic name, O(partitions) and
    O(replication_factor) offline, then config names against the broker's list of topic configs, the
    replication factor against the number of brokers, and finally each planned change by the broker itself
    (C(validate_only) requests), so that a refused change leaves the cluster as it was.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.kafka
attributes:
  check_mode:
    description: Can run in check mode; returns in RV(actions) the admin calls it would make (the broker validates them), without making them.
    support: full
  diff_mode:
    description: Returns the topic (partitions, replication factor, configs set on the topic) before and after.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  name:
    description:
      - Topic name - ASCII letters, digits, V(.), V(_) and V(-), at most 249 characters, not V(.) or V(..).
    type: str
    required: true
    aliases: [topic]
  partitions:
    description:
      - Number of partitions (at least 1). When creating without it, the broker's C(num.partitions) applies;
        for an existing topic, leaving it out leaves the count as it is.
      - Can only grow; a value below the current count fails without changing anything.
    type: int
  replication_factor:
    description:
      - Replicas per partition, at most the number of brokers. When creating without it, the broker's
        C(default.replication.factor) applies; for an existing topic, leaving it out leaves it as it is.
      - A change of an existing topic needs O(allow_reassignment=true).
    type: int
  allow_reassignment:
    description:
      - Let a changed O(replication_factor) reassign the replicas of every partition
        (C(AlterPartitionReassignments)). Growing keeps the current replicas and adds the least used brokers;
        shrinking keeps the first replicas of each partition. The module waits up to O(request_timeout) for
        the reassignment to finish; it goes on in the cluster when that time is up.
      - Without it, a changed replication factor fails and shows the difference.
    type: bool
    default: false
  configs:
    description:
      - Topic configs to set, e.g. C(retention.ms), C(cleanup.policy), C(min.insync.replicas).
        Values may be strings, numbers, booleans or lists (joined with commas, as for C(cleanup.policy)).
      - A null value resets that config to the broker default.
      - Each config named here is set on the topic itself, even when its value equals the broker default, so
        that a later change of the broker default does not change this topic.
      - Configs not named here are left as they are. Unknown names fail, listing the allowed ones.
    type: dict
    default: {}
  state:
    description:
      - V(present) ensures the topic exists as described; V(absent) deletes it (with all its data).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - name: Kafka topic configs
    description: Every topic-level config with its type and default.
    link: https://kafka.apache.org/documentation/#topicconfigs
"""

EXAMPLES = r"""
- name: Topic for application logs, a week of retention
  aistack.infra.kafka_topic:
    bootstrap_servers: ["10.0.0.11:9092"]
    name: app-logs
    partitions: 6
    replication_factor: 3
    configs:
      retention.ms: 604800000
      min.insync.replicas: 2
      cleanup.policy: delete

- name: The same over the authenticated TLS listener
  aistack.infra.kafka_topic:
    bootstrap_servers: ["kafka.example.internal:9093"]
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_cafile: /etc/aistack/kafka/ca.pem
    name: app-logs
    partitions: 12

- name: Reset retention to the broker default, leave every other config as it is
  aistack.infra.kafka_topic:
    bootstrap_servers: ["10.0.0.11:9092"]
    name: app-logs
    configs:
      retention.ms: null

- name: Delete the topic
  aistack.infra.kafka_topic:
    bootstrap_servers: ["10.0.0.11:9092"]
    name: scratch
    state: absent
"""

RETURN = r"""
actions:
  description:
    - The admin calls made, in words, in order. In check mode, the calls that would be made.
  returned: always
  type: list
  elements: str
  sample:
    - create_partitions('app-logs', total_count=12)
    - "incremental_alter_configs(topic='app-logs', set={'retention.ms': '604800000'})"
topic:
  description:
    - The topic after the run (in check mode, as it would be); empty when it does not exist.
    - C(configs) holds the configs set on the topic itself (not the broker defaults), as strings.
  returned: always
  type: dict
  sample:
    name: app-logs
    partitions: 12
    replication_factor: 3
    configs: {retention.ms: '604800000', min.insync.replicas: '2', cleanup.policy: delete}
diff:
  description: The topic before and after (same keys as RV(topic)).
  returned: when diff mode is on
  type: dict
  sample:
    before: {name: app-logs, partitions: 6, replication_factor: 3, configs: {}}
    after: {name: app-logs, partitions: 12, replication_factor: 3, configs: {retention.ms: '604800000'}}
differences:
  description: When a change is refused (fewer partitions, another replication factor), what differs.
  returned: on failure, when the existing topic differs in a way that cannot be changed
  type: list
  elements: dict
  sample:
    - {key: partitions, current: 12, requested: 6}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aistack.infra.plugins.module_utils._kafka import (
    HAS_KAFKA,
    KAFKA_CONNECTION_ARGS,
    KAFKA_IMPORT_ERROR,
    KAFKA_REQUIRED_BY,
    KAFKA_REQUIRED_IF,
    KafkaError,
    TopicManager,
    close_quietly,
    connect_admin,
    validate_connection,
    validate_topic_params,
)


def argument_spec():
    spec = dict(KAFKA_CONNECTION_ARGS)
    spec.update(
        name=dict(type='str', required=True, aliases=['topic']),
        partitions=dict(type='int'),
        replication_factor=dict(type='int'),
        allow_reassignment=dict(type='bool', default=False),
        configs=dict(type='dict', default={}),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=KAFKA_REQUIRED_IF,
        required_by=KAFKA_REQUIRED_BY,
        supports_check_mode=True,
    )
    errors = validate_topic_params(module.params) + validate_connection(module.params)
    if errors:
        module.fail_json(msg='invalid arguments: ' + '; '.join(errors), actions=[])
    if not HAS_KAFKA:
        module.fail_json(msg=missing_required_lib('kafka-python'), exception=KAFKA_IMPORT_ERROR)

    admin = manager = None
    try:
        admin = connect_admin(module.params, client_id='aistack-kafka-topic')
        manager = TopicManager(module.params, check_mode=module.check_mode, admin=admin)
        result = manager.run()
    except KafkaError as exc:
        details = dict(exc.details)
        details.setdefault('actions', manager.actions if manager is not None else [])
        close_quietly(admin)
        module.fail_json(msg=exc.msg, changed=bool(manager is not None and manager.done), **details)
    close_quietly(admin)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
