#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: milvus_collection
short_description: Ensure a Milvus collection, its schema and partitions (and its database)
version_added: 0.1.0
description:
  - Creates a Milvus collection with the requested schema and partitions, creating its database
    (O(db_name)) first when it does not exist; or drops it with O(state=absent).
  - Idempotency compares the whole schema returned by C(describe_collection) - every field's name,
    type, primary key, auto id, dimension, maximum length, array element type and capacity, and the
    field order; the dynamic field; the number of shards, consistency level and descriptions when given.
  - Milvus cannot alter a schema. When the existing collection differs, O(recreate=never) fails,
    showing each difference, and changes nothing (no data is lost); O(recreate=on_change) drops the
    collection and creates it again, empty.
  - Missing partitions are created. Partitions that are not requested are kept, unless
    O(partitions_exclusive=true).
  - Everything is validated before anything is changed - field types, dimensions, lengths,
    exactly one primary key, a vector field, partition names, and what the server's version can hold.
  - Indexes are managed by M(aistack.infra.milvus_index), users and the root password by M(aistack.infra.milvus_user).
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.milvus
attributes:
  check_mode:
    description: Can run in check mode; returns in RV(actions) the API calls it would make, without making them.
    support: full
  diff_mode:
    description: Returns the collection definition before and after.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  collection:
    description:
      - Name of the collection (letters, digits and C(_), not starting with a digit).
      - The database is O(db_name); it is created when it does not exist (with O(state=present)).
    type: str
    required: true
    aliases: [name]
  description:
    description: Description of the collection. Compared only when given.
    type: str
  fields:
    description:
      - The schema, in order. Required with O(state=present).
      - Exactly one field has O(fields[].is_primary). Milvus 2.3 holds exactly one vector field; 2.4 and later, several.
    type: list
    elements: dict
    suboptions:
      name:
        description: Field name.
        type: str
        required: true
      type:
        description:
          - Data type (a pymilvus C(DataType) name, case-insensitive) - C(BOOL), C(INT8), C(INT16), C(INT32),
            C(INT64), C(FLOAT), C(DOUBLE), C(VARCHAR), C(JSON), C(ARRAY), C(FLOAT_VECTOR), C(BINARY_VECTOR);
            C(FLOAT16_VECTOR), C(BFLOAT16_VECTOR) and C(SPARSE_FLOAT_VECTOR) need Milvus 2.4.
        type: str
        required: true
      dim:
        description:
          - Number of dimensions; required for C(FLOAT_VECTOR), C(BINARY_VECTOR) (a multiple of 8),
            C(FLOAT16_VECTOR) and C(BFLOAT16_VECTOR), refused for other types.
        type: int
      max_length:
        description:
          - Maximum length in bytes (1 to 65535) of a C(VARCHAR) field, or of the elements of an C(ARRAY) of C(VARCHAR).
          - Required there, refused elsewhere.
        type: int
      is_primary:
        description: The primary key (C(INT64) or C(VARCHAR)).
        type: bool
        default: false
      auto_id:
        description: Let Milvus generate the primary key. Only on the primary key field.
        type: bool
        default: false
      element_type:
        description: Element type of an C(ARRAY) field (a scalar type other than C(JSON) and C(ARRAY)).
        type: str
      max_capacity:
        description: Maximum number of elements (1 to 4096) of an C(ARRAY) field.
        type: int
      description:
        description: Field description. Compared only when given.
        type: str
  enable_dynamic_field:
    description: Accept fields that are not in the schema (Milvus keeps them in a hidden JSON field C($meta)).
    type: bool
    default: false
  shards_num:
    description:
      - Number of shards (channels) of the collection. Set at creation, compared when given.
      - Milvus' default, 1, is used when not given.
    type: int
  consistency_level:
    description:
      - Default consistency level of searches and queries. Set at creation, compared when given.
      - Milvus' default, V(Bounded), is used when not given.
    type: str
    choices: [Strong, Session, Bounded, Eventually]
  partitions:
    description:
      - Partitions the collection must have (besides C(_default)), for example one per tenant. Missing ones are created.
    type: list
    elements: str
    default: []
  partitions_exclusive:
    description:
      - Drop the partitions that are not in O(partitions) (never C(_default)), with their data; a loaded
        partition is released first.
      - With V(false), partitions are never dropped.
    type: bool
    default: false
  recreate:
    description:
      - What to do when the existing collection's schema differs from the request.
      - V(never) fails, listing every difference in the message and in RV(differences), and changes nothing.
      - V(on_change) drops the collection - its data, index and partitions - and creates it again with the requested definition.
    type: str
    choices: [never, on_change]
    default: never
  state:
    description:
      - V(present) ensures the collection and its partitions; V(absent) drops the collection with its data
        (the database stays).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Partition-key fields, nullable fields and default values (Milvus 2.4 and later) are not managed.
  - A collection dropped and recreated with O(recreate=on_change) has no index and is not loaded; run
    M(aistack.infra.milvus_index) after this module.
seealso:
  - module: aistack.infra.milvus_index
  - module: aistack.infra.milvus_user
  - name: Milvus schema reference
    description: Field types and their parameters.
    link: https://milvus.io/docs/schema.md
"""

EXAMPLES = r"""
- name: RAG chunks, one partition per tenant
  aistack.infra.milvus_collection:
    uri: http://127.0.0.1:19530
    token: "root:{{ vault_milvus_root_password }}"
    db_name: rag
    collection: documents
    description: RAG chunks
    fields:
      - {name: id, type: INT64, is_primary: true, auto_id: true}
      - {name: tenant, type: VARCHAR, max_length: 64}
      - {name: content, type: VARCHAR, max_length: 8192}
      - {name: metadata, type: JSON}
      - {name: embedding, type: FLOAT_VECTOR, dim: 1536}
    consistency_level: Strong
    partitions: [tenant_a, tenant_b]

- name: Tags as an array, a new embedding size - recreate the collection (its data is lost)
  aistack.infra.milvus_collection:
    collection: images
    fields:
      - {name: id, type: VARCHAR, max_length: 64, is_primary: true}
      - {name: tags, type: ARRAY, element_type: VARCHAR, max_length: 32, max_capacity: 16}
      - {name: code, type: BINARY_VECTOR, dim: 256}
    recreate: on_change

- name: Exactly these partitions (others are dropped with their data)
  aistack.infra.milvus_collection:
    collection: documents
    db_name: rag
    fields: "{{ documents_fields }}"
    partitions: [tenant_a, tenant_c]
    partitions_exclusive: true

- name: Drop the collection
  aistack.infra.milvus_collection:
    collection: scratch
    state: absent
"""

RETURN = r"""
actions:
  description:
    - The API calls made, in words, in order. In check mode, the calls that would be made.
  returned: always
  type: list
  elements: str
  sample:
    - create_database(db_name='rag')
    - "create_collection(collection='documents', fields=['id INT64 primary auto_id', 'tenant VARCHAR(64)',
       'embedding FLOAT_VECTOR(1536)'], enable_dynamic_field=False, shards_num=1, consistency_level='Strong')"
    - create_partition(collection='documents', partition='tenant_a')
collection:
  description:
    - The resulting collection, as the server describes it after the run (in check mode, the one that
      would result); empty with O(state=absent). On a failed comparison, the collection as it is.
  returned: always
  type: dict
  sample:
    name: documents
    db_name: rag
    description: RAG chunks
    fields:
      - {name: id, type: INT64, is_primary: true, auto_id: true, description: ''}
      - {name: tenant, type: VARCHAR, is_primary: false, max_length: 64, description: ''}
      - {name: embedding, type: FLOAT_VECTOR, is_primary: false, dim: 1536, description: ''}
    enable_dynamic_field: false
    shards_num: 1
    consistency_level: Strong
    partitions: [_default, tenant_a, tenant_b]
diff:
  description: The collection before and after (same keys as RV(collection)).
  returned: when diff mode is on
  type: dict
differences:
  description: With O(recreate=never), each difference between the existing collection and the request.
  returned: on failure, when the existing collection differs
  type: list
  elements: dict
  sample:
    - {key: 'field embedding: dim', current: 768, requested: 1536}
"""


from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    MILVUS_CONNECTION_ARGS,
    run_manager_module,
)
from ansible_collections.aistack.infra.plugins.module_utils._milvus_collection import (
    CONSISTENCY_LEVELS,
    MilvusCollectionManager,
)


def argument_spec():
    spec = dict(MILVUS_CONNECTION_ARGS)
    spec.update(
        collection=dict(type='str', required=True, aliases=['name']),
        description=dict(type='str'),
        fields=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            type=dict(type='str', required=True),
            dim=dict(type='int'),
            max_length=dict(type='int'),
            is_primary=dict(type='bool', default=False),
            auto_id=dict(type='bool', default=False),
            element_type=dict(type='str'),
            max_capacity=dict(type='int'),
            description=dict(type='str'),
        )),
        enable_dynamic_field=dict(type='bool', default=False),
        shards_num=dict(type='int'),
        consistency_level=dict(type='str', choices=list(CONSISTENCY_LEVELS)),
        partitions=dict(type='list', elements='str', default=[]),
        partitions_exclusive=dict(type='bool', default=False),
        recreate=dict(type='str', choices=['never', 'on_change'], default='never'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    return spec


def main():
    run_manager_module(argument_spec(), MilvusCollectionManager, required_if=[('state', 'present', ('fields',))])


if __name__ == '__main__':
    main()
