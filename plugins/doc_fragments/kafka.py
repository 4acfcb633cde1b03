# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options shared by every module that talks to Kafka (see module_utils/_kafka.py)."""

    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Brokers to start from, as V(host:port) (V([::1]:9092) for IPv6); the client learns the others from them.
    type: list
    elements: str
    required: true
  security_protocol:
    description:
      - Protocol of the listener that O(bootstrap_servers) point to.
      - V(SASL_PLAINTEXT) sends the SASL password unencrypted (with V(PLAIN)); use it on private networks only.
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: PLAINTEXT
  sasl_mechanism:
    description:
      - SASL mechanism, with O(security_protocol=SASL_SSL) or O(security_protocol=SASL_PLAINTEXT).
    type: str
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
    default: SCRAM-SHA-512
  sasl_username:
    description:
      - SASL user. Required with V(SASL_SSL) and V(SASL_PLAINTEXT).
    type: str
  sasl_password:
    description:
      - Password of O(sasl_username). Required with V(SASL_SSL) and V(SASL_PLAINTEXT).
    type: str
  ssl_cafile:
    description:
      - PEM file of the CAs that signed the brokers' certificates. Without it the system's CAs are trusted.
      - The broker certificate is always verified (TLS 1.2 or later).
    type: path
  ssl_certfile:
    description:
      - Client certificate (PEM, may hold the key too), for brokers that require TLS client authentication.
    type: path
  ssl_keyfile:
    description:
      - Private key (PEM) of O(ssl_certfile), when it is not in that file. Requires O(ssl_certfile).
    type: path
  ssl_check_hostname:
    description:
      - Check that the broker certificate names the host of the address used (each advertised listener's host).
    type: bool
    default: true
  request_timeout:
    description:
      - Seconds allowed for connecting (all bootstrap servers together) and for each admin request.
    type: int
    default: 30
requirements:
  - kafka-python (3.0 or later; checked with 3.0.12)
notes:
  - Checked against Apache Kafka 4.3.1 (KRaft) over PLAINTEXT, SSL and SASL_SSL with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN.
  - When no bootstrap server can be used the error says why (connection refused, certificate not trusted,
    authentication failed); a wrong password or an untrusted certificate fails within about 3 seconds, without
    waiting for O(request_timeout).
"""
