"""The nginx role's status server read by the nginx exporter the monitoring role runs, for real.

nginx: the lab's image of nginx:1.22 (Debian 12's nginx, ``lab/images/nginx``) serving the nginx
role's own ``stub-status.conf`` (rendered from roles/nginx/templates with the role's defaults, on a
free port) beside a plain site. Exporter: the lab's image of nginx/nginx-prometheus-exporter (Debian
12's prometheus-nginx-exporter 0.11, ``lab/images/nginx-exporter``) with the flags the monitoring role
gives it: the host's network namespace, ``--nginx.scrape-uri`` on loopback, ``--web.listen-address``.
The exporter must report nginx up, the connection held open by the test as active, and the
requests the test made; the status location must refuse any other path.
"""
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from lib.ansible_run import render_role_templates
from lib.milvus_server import free_ports
from lib.prometheus_text import scrape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "aistack-test-i10-"


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def wait_for(check, name, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(docker("logs", name, check=False).stderr[-2000:])
            time.sleep(0.5)


@pytest.fixture
def containers():
    names = [PREFIX + "nginx-exporter", PREFIX + "nginx"]
    for name in names:
        docker("rm", "-f", name, check=False)
    yield names
    for name in names:
        docker("rm", "-f", name, check=False)


def test_nginx_up_connections_and_requests(containers, tmp_path):
    proc = subprocess.run([os.path.join(REPO, "lab", "bin", "images.sh"), "nginx", "nginx-exporter"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status_port, site_port, exporter_port = free_ports(3)
    status_conf = render_role_templates("nginx", ["stub-status.conf"], {"nginx_stub_status_port": status_port})
    (tmp_path / "stub-status.conf").write_text(status_conf["stub-status.conf"])
    (tmp_path / "nginx.conf").write_text(
        "worker_processes 1;\nerror_log stderr;\nevents { worker_connections 64; }\n"
        "http {\n  access_log off;\n  include /etc/aistack-test/stub-status.conf;\n"
        "  server { listen 127.0.0.1:%d; location / { return 200 'site\\n'; } }\n}\n" % site_port)
    tmp_path.chmod(0o755)
    exporter, server = containers
    docker("run", "-d", "--name", server, "--network", "host", "-v", "%s:/etc/aistack-test:ro" % tmp_path,
           "aistack-lab/nginx:1.22", "nginx", "-c", "/etc/aistack-test/nginx.conf", "-g", "daemon off;")
    status_url = "http://127.0.0.1:%d/stub_status" % status_port
    text = wait_for(lambda: urllib.request.urlopen(status_url, timeout=5).read().decode(), server)
    assert text.startswith("Active connections:"), text
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen("http://127.0.0.1:%d/" % status_port, timeout=5)
    assert refused.value.code == 404

    docker("run", "-d", "--name", exporter, "--network", "host", "aistack-lab/nginx-exporter:0.11.0",
           "--nginx.scrape-uri=" + status_url, "--web.listen-address=127.0.0.1:%d" % exporter_port)
    url = "http://127.0.0.1:%d/metrics" % exporter_port
    before = wait_for(lambda: scrape(url), exporter)
    assert before[("nginx_up", frozenset())] == 1

    # Ten requests to the site, and one connection held open while the exporter reads.
    for _ in range(10):
        assert urllib.request.urlopen("http://127.0.0.1:%d/" % site_port, timeout=5).read() == b"site\n"
    held = socket.create_connection(("127.0.0.1", site_port))
    try:
        after = scrape(url)
    finally:
        held.close()
    assert after[("nginx_up", frozenset())] == 1
    # The held connection and the exporter's own request to stub_status.
    assert after[("nginx_connections_active", frozenset())] >= 2
    # The ten site requests and at least one stub_status read by the exporter in between.
    requests = after[("nginx_http_requests_total", frozenset())] - before[("nginx_http_requests_total", frozenset())]
    assert requests >= 11, requests
