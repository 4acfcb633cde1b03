# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options shared by every module that talks to Milvus (see module_utils/_milvus.py)."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - Address of the Milvus proxy, as pymilvus takes it (C(http://host:19530), C(https://host:19530) or C(tcp://host:19530)).
      - An C(https) URI turns on TLS unless O(secure) says otherwise.
      - If not set, the environment variable E(MILVUS_URI) is used.
    type: str
    default: http://127.0.0.1:19530
  token:
    description:
      - Authentication token (C(user:password) or an API key).
      - Mutually exclusive with O(user) and O(password).
      - If not set, the environment variable E(MILVUS_TOKEN) is used.
    type: str
  user:
    description:
      - User name when the server has authentication enabled. Requires O(password).
      - If not set, the environment variable E(MILVUS_USER) is used.
    type: str
  password:
    description:
      - Password of O(user).
      - If not set, the environment variable E(MILVUS_PASSWORD) is used.
    type: str
  db_name:
    description:
      - Database that holds the collection.
      - If not set, the environment variable E(MILVUS_DB_NAME) is used.
    type: str
    default: default
  secure:
    description:
      - Use TLS for the gRPC connection. Defaults to true for an C(https) O(uri), false otherwise.
    type: bool
  server_pem_path:
    description:
      - Server certificate (PEM) to trust, for one-way TLS with a self-signed certificate.
    type: path
  server_name:
    description:
      - Name expected in the server certificate when it differs from the host in O(uri).
    type: str
  ca_pem_path:
    description:
      - CA certificate (PEM) for two-way TLS. Use together with O(client_pem_path) and O(client_key_path).
    type: path
  client_pem_path:
    description:
      - Client certificate (PEM) for two-way TLS.
    type: path
  client_key_path:
    description:
      - Private key (PEM) of O(client_pem_path).
    type: path
  timeout:
    description:
      - Seconds allowed for connecting and for each API call.
    type: float
    default: 30
requirements:
  - pymilvus (2.3 or later; checked with 3.0.2 against Milvus 2.3.5)
notes:
  - Checked against Milvus 2.3.5 standalone.
"""
