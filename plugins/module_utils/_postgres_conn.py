# -*- coding: utf-8 -*-
# Copyright: aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection options shared by the aistack.infra modules (private).

The option names follow community.postgresql so that playbooks can pass the same
``login_*`` variables to both collections. The matching documentation lives in the
``aistack.infra.postgres`` doc fragment.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where psycopg2 is missing
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()


SSL_MODES = ['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']

POSTGRES_COMMON_ARGS = dict(
    login_host=dict(type='str', fallback=(env_fallback, ['PGHOST'])),
    login_port=dict(type='int', default=5432, fallback=(env_fallback, ['PGPORT']), aliases=['port']),
    login_user=dict(type='str', default='postgres', fallback=(env_fallback, ['PGUSER'])),
    login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PGPASSWORD'])),
    login_unix_socket=dict(type='str'),
    db=dict(type='str', fallback=(env_fallback, ['PGDATABASE']), aliases=['login_db', 'database']),
    ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES),
    ca_cert=dict(type='path', aliases=['ssl_rootcert']),
    connect_timeout=dict(type='int', default=10),
)

LOOPBACK_HOSTS = frozenset(['localhost', '127.0.0.1', '::1', 'ip6-localhost'])


def postgres_common_argument_spec():
    """Return a fresh copy of the connection argument spec, to merge into a module's spec."""
    return copy.deepcopy(POSTGRES_COMMON_ARGS)


class PostgresConnectionError(Exception):
    """Raised when the server cannot be reached or refuses the login."""


def ensure_psycopg2(module):
    """Fail the module with Ansible's standard message when psycopg2 is not importable."""
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib('psycopg2 (or psycopg2-binary)'),
                         exception=PSYCOPG2_IMPORT_ERROR)


def connection_kwargs(params, application_name='aistack.infra'):
    """Translate module parameters into ``psycopg2.connect()`` keyword arguments."""
    kwargs = {
        'host': params.get('login_unix_socket') or params.get('login_host'),
        'port': params.get('login_port'),
        'user': params.get('login_user'),
        'password': params.get('login_password'),
        'dbname': params.get('db'),
        'sslmode': params.get('ssl_mode'),
        'sslrootcert': params.get('ca_cert'),
        'connect_timeout': params.get('connect_timeout'),
        'application_name': application_name,
    }
    return dict((k, v) for k, v in kwargs.items() if v not in (None, ''))


def is_local_server(params):
    """True when the connection goes to this host: a unix socket, no host, or a loopback name."""
    if params.get('login_unix_socket'):
        return True
    host = params.get('login_host')
    if not host:
        return True  # libpq then uses its default unix socket
    host = host.strip().lower()
    return host.startswith('/') or host in LOOPBACK_HOSTS or host.startswith('127.')


def connect(params, autocommit=False, application_name='aistack.infra'):
    """Open a psycopg2 connection from module parameters; raise PostgresConnectionError on failure."""
    if not HAS_PSYCOPG2:
        raise PostgresConnectionError(missing_required_lib('psycopg2 (or psycopg2-binary)'))
    kwargs = connection_kwargs(params, application_name=application_name)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        where = kwargs.get('host') or 'the default socket'
        raise PostgresConnectionError(
            'unable to connect to database %r on %s port %s as %r: %s'
            % (kwargs.get('dbname'), where, kwargs.get('port'), kwargs.get('user'), str(exc).strip()))
    conn.autocommit = autocommit
    return conn
