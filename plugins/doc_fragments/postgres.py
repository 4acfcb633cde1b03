# -*- coding: utf-8 -*-
# Copyright: aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # PostgreSQL connection options, as community.postgresql names them.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host running the database server.
      - Omit it (and O(login_unix_socket)) to connect through the default unix socket.
      - A unix socket directory (a path starting with V(/)) is accepted too.
      - If not set, the E(PGHOST) environment variable is used.
    type: str
  login_port:
    description:
      - Database server port.
      - If not set, the E(PGPORT) environment variable is used, then V(5432).
    type: int
    default: 5432
    aliases: [ port ]
  login_user:
    description:
      - Role to log in as.
      - If not set, the E(PGUSER) environment variable is used, then V(postgres).
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user).
      - If not set, the E(PGPASSWORD) environment variable is used; libpq also reads C(~/.pgpass).
    type: str
  login_unix_socket:
    description:
      - Directory of the server's unix socket. Takes precedence over O(login_host).
    type: str
  db:
    description:
      - Database to connect to, the one that holds the table.
      - If not set, the E(PGDATABASE) environment variable is used, then libpq's default (the user name).
    type: str
    aliases: [ login_db, database ]
  ssl_mode:
    description:
      - libpq SSL mode. See U(https://www.postgresql.org/docs/current/libpq-ssl.html).
    type: str
    default: prefer
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description:
      - File with the certificate authorities that sign the server's certificate.
      - Used with O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
    type: path
    aliases: [ ssl_rootcert ]
  connect_timeout:
    description:
      - Seconds to wait for the connection to be made.
    type: int
    default: 10
requirements:
  - psycopg2 (or psycopg2-binary) on the managed node
notes:
  - The connection options follow C(community.postgresql) names, so the same variables can be passed to both collections.
'''
