# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options of the aistack.infra OpenSearch modules (named as opensearch-py names them)."""

    DOCUMENTATION = r'''
options:
  hosts:
    description:
      - OpenSearch nodes to talk to, as URLs (V(https://search1:9200)) or V(host:port) (the scheme then follows O(use_ssl)).
      - When a node cannot be reached, the next one is tried.
      - Falls back to the E(OPENSEARCH_HOSTS) environment variable (comma-separated).
    type: list
    elements: str
    default: ['http://localhost:9200']
  user:
    description:
      - User name for HTTP basic authentication (opensearch-py C(http_auth)).
      - Falls back to the E(OPENSEARCH_USER) environment variable.
    type: str
    aliases: [http_auth_user]
  password:
    description:
      - Password for HTTP basic authentication.
      - Falls back to the E(OPENSEARCH_PASSWORD) environment variable.
    type: str
    aliases: [http_auth_password]
  use_ssl:
    description:
      - Use HTTPS for entries of O(hosts) that carry no scheme.
    type: bool
    default: false
  verify_certs:
    description:
      - Verify the server certificate (chain and host name).
      - Only set to V(false) on test systems.
    type: bool
    default: true
  ca_certs:
    description:
      - PEM file with the certificate authorities to trust instead of the system store.
    type: path
  client_cert:
    description:
      - PEM client certificate for mutual TLS.
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert) when it is not in the same file.
    type: path
  ssl_assert_hostname:
    description:
      - Name the server certificate must match instead of the host name in O(hosts)
        (for example when connecting by IP address).
    type: str
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: int
    default: 30
requirements:
  - opensearch-py
notes:
  - The modules speak to OpenSearch with the opensearch-py client library, which must be installed on the
    host that runs them (usually the control node with C(delegate_to) or C(connection=local)).
  - HTTP proxies (E(HTTPS_PROXY) and similar) are not used.
'''
