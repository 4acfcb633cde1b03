# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thread-safe HTTP(S) with the Python standard library, for the generic probes of ``service_health``.

Private to aistack.infra: no stability promise for other collections.

The ``http`` probe and the ``docker_container`` probe's engine-socket path need no client library, so
they speak HTTP with ``http.client`` + ``ssl``. ``ansible.module_utils.urls.open_url`` is not used on
purpose: it installs a process-wide urllib opener on every call, which is not safe when
``service_health`` runs several probes (possibly with different TLS settings or a docker unix socket)
in threads at once. Services that have a maintained client library (OpenSearch: opensearch-py) are
spoken to through it instead (see ``_opensearch.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl

import http.client as http_client
from urllib.parse import urlsplit


def build_ssl_context(verify=True, ca_file=None, client_cert=None, client_key=None):
    """An SSLContext for one connection target (never shared process-wide)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


class _HTTPSConnection(http_client.HTTPSConnection):
    """HTTPSConnection that can check the certificate against another name (ssl_assert_hostname)."""

    def __init__(self, host, port=None, context=None, server_hostname=None, **kwargs):
        http_client.HTTPSConnection.__init__(self, host, port=port, context=context, **kwargs)
        self._aistack_context = context
        self._aistack_server_hostname = server_hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock = self._aistack_context.wrap_socket(sock, server_hostname=self._aistack_server_hostname or self.host)


class _UnixHTTPConnection(http_client.HTTPConnection):
    """Plain HTTP over a unix socket (the docker engine's API)."""

    def __init__(self, path, timeout=10):
        http_client.HTTPConnection.__init__(self, 'localhost', timeout=timeout)
        self._aistack_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._aistack_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class HttpResponse:
    """Status, lower-cased headers and body bytes of one HTTP exchange."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        if not self.body:
            return None
        return json.loads(self.body.decode('utf-8'))


def http_request(method, url, body=None, headers=None, timeout=10, ssl_context=None, server_hostname=None,
                 unix_socket=None, max_body=16 * 1024 * 1024):
    """One HTTP(S) request with the standard library; returns an HttpResponse for every status.

    Connection and TLS failures raise OSError (socket.timeout, ssl.SSLError and ConnectionError are
    subclasses). ``body`` may be bytes, str or a JSON-serialisable object.
    """
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https'):
        raise ValueError("URL scheme must be http or https: %s" % mask_url(url))
    headers = dict(headers or {})
    if parts.username is not None and not any(k.lower() == 'authorization' for k in headers):
        headers['Authorization'] = basic_auth_header(parts.username, parts.password or '')
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body, sort_keys=True)
        headers.setdefault('Content-Type', 'application/json')
    if isinstance(body, str):
        body = body.encode('utf-8')
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    if unix_socket:
        conn = _UnixHTTPConnection(unix_socket, timeout=timeout)
    elif parts.scheme == 'https':
        conn = _HTTPSConnection(parts.hostname, parts.port, context=ssl_context or build_ssl_context(),
                                server_hostname=server_hostname, timeout=timeout)
    else:
        conn = http_client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method.upper(), path, body=body, headers=headers)
        resp = conn.getresponse()
        data = b'' if method.upper() == 'HEAD' else resp.read(max_body)
        return HttpResponse(resp.status, resp.reason, dict((k.lower(), v) for k, v in resp.getheaders()), data)
    finally:
        conn.close()


def basic_auth_header(user, password):
    token = base64.b64encode(('%s:%s' % (user, password)).encode('utf-8')).decode('ascii')
    return 'Basic %s' % token


def mask_url(url):
    """The URL without any user:password@ part (safe to show in results and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return '<unparsable URL>'
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ''
    if parts.port:
        netloc += ':%d' % parts.port
    return parts._replace(netloc='********@' + netloc).geturl()
