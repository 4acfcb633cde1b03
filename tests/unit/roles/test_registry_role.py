# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry role's preflight: bad variables and bad bundles fail naming the variable or the
file, before any change (only preflight tasks run), and the static server's nginx.conf renders as
documented.

Real ansible-playbook runs against localhost (tests/lib/ansible_run.py) on small bundles written
by this module in the layout of playbooks/offline_bundle.yml. Serving and pushing for real is
molecule/registry's.
"""
import atexit
import hashlib
import json
import os
import shutil
import tempfile

from lib.ansible_run import preflight_suite, render_role_templates, run_playbook

ROOT = tempfile.mkdtemp(prefix="registry-role-test-")
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)

IMAGES = {"127.0.0.1:5000/registry:2": "sha256:" + "1" * 64, "127.0.0.1:5000/nginx:1.22": "sha256:" + "2" * 64}


def _bundle(name, manifest_changes=None, corrupt=None, manifest=True):
    """A bundle folder: two image archives and an apt index, with a manifest of their sha256."""
    path = os.path.join(ROOT, name)
    files = {"images/127.0.0.1_5000_registry_2.tar": b"registry archive",
             "images/127.0.0.1_5000_nginx_1.22.tar": b"nginx archive",
             "apt/Packages": b"Package: hello\n", "apt/Release": b"Origin: aistack\n"}
    for rel, content in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, rel)), exist_ok=True)
        with open(os.path.join(path, rel), "wb") as fh:
            fh.write(content)
    data = {"format": 1, "image_ids": dict(IMAGES),
            "image_archives": {n: "images/" + n.replace("/", "_").replace(":", "_") + ".tar" for n in IMAGES},
            "sha256": {rel: hashlib.sha256(c).hexdigest() for rel, c in files.items()},
            "size": {rel: len(c) for rel, c in files.items()}}
    data.update(manifest_changes or {})
    if manifest:
        with open(os.path.join(path, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    if corrupt:
        with open(os.path.join(path, corrupt), "ab") as fh:
            fh.write(b"changed after the manifest was written")
    return path


GOOD = _bundle("good")
VALID = {"registry_bundle_dir": GOOD, "aistack_image_registry": "127.0.0.1:5000", "registry_bind_address": "10.0.0.5"}


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


# case id -> (variables, substrings the failure message must contain); None = must pass.
# The valid bundle passes every bundle check and stops, at the latest, at the engine check (no
# Docker engine is needed by this test), so "valid" expects that message or none.
CASES = {
    "bind-wildcard": (_with(registry_bind_address="0.0.0.0"), ["registry_bind_address", "never 0.0.0.0", "is 0.0.0.0"]),
    "bind-ipv6-wildcard": (_with(registry_bind_address="::"), ["registry_bind_address", "is ::"]),
    "bind-not-an-address": (_with(registry_bind_address="registry.lan"), ["registry_bind_address", "is registry.lan"]),
    "same-ports": (_with(registry_apt_port=5000), ["registry_port (5000) and registry_apt_port (5000)"]),
    "port-out-of-range": (_with(registry_port=70000), ["registry_port (70000)"]),
    "relative-bundle-dir": (_with(registry_bundle_dir="bundle"), ["registry_bundle_dir (bundle)", "absolute"]),
    "no-manifest": (_with(registry_bundle_dir=_bundle("no-manifest", manifest=False)),
                    ["manifest.json", "cannot be read", "set registry_bundle_dir"]),
    "wrong-format": (_with(registry_bundle_dir=_bundle("format-2", {"format": 2})),
                     ["is not a format 1 manifest of playbooks/offline_bundle.yml"]),
    "registry-image-not-in-bundle": (_with(registry_image="docker.io/registry:2"),
                                     ["registry_image (docker.io/registry:2)", "127.0.0.1:5000/nginx:1.22, 127.0.0.1:5000/registry:2"]),
    "apt-image-not-in-bundle": (_with(registry_apt_image="127.0.0.1:5000/nginx:1.27"), ["registry_apt_image (127.0.0.1:5000/nginx:1.27)"]),
    "corrupt-file": (_with(registry_bundle_dir=_bundle("corrupt", corrupt="apt/Packages")),
                     ["differ from its manifest's sha256: apt/Packages.", "nothing was changed"]),
    "missing-file": (_with(registry_bundle_dir=_bundle("missing", {"sha256": {"apt/Packages.gz": "0" * 64}})),
                     ["apt/Packages.gz"]),
    "tls-no-names": (_with(registry_tls_enabled=True, registry_tls_names=[]), ["registry_tls_names ()", "at least one"]),
    "tls-bad-name": (_with(registry_tls_enabled=True, registry_tls_names=["registry site"]), ["registry_tls_names (registry site)"]),
    "tls-relative-dir": (_with(registry_tls_enabled=True, registry_tls_dir="tls"), ["registry_tls_dir (tls)", "absolute"]),
}

probe, test_invalid_variables, test_only_preflight_ran, _unused = preflight_suite(
    "registry", CASES,
    preflight=["Check the variables", "Read the bundle's manifest", "Check the bundle's manifest",
               "Check the bundle holds the images", "Compute the sha256", "Check each equals the manifest's",
               "Read the Docker engine", "Check the Docker engine answers", "Validating arguments"],
)


def test_valid_bundle_passes_every_bundle_check():
    """The good bundle is refused by nothing but, where this machine has no engine, the engine check."""
    from lib.ansible_run import role_preflight_probe
    results, _ran, _raw = role_preflight_probe("registry", {"valid": (VALID, None)}, "registry_preflight")
    msg = results["valid"]
    assert msg == "PASSED" or msg.startswith("registry: the Docker engine on localhost does not answer"), msg


def test_nginx_conf_serves_the_repository_read_only():
    files = render_role_templates("registry", ["nginx.conf"], {})
    conf = files["nginx.conf"]
    assert "listen 8080;" in conf
    assert "root /srv/apt;" in conf
    assert "autoindex off;" in conf
    assert "limit_except GET" in conf and "deny all;" in conf
    assert "server_tokens off;" in conf


COMPUTED = ("{'san': _registry_tls_san, 'env': _registry_env, 'volumes': _registry_tls_volumes, 'labels': _registry_tls_labels,"
            " 'health': _registry_healthcheck.test[1], 'apt_health': _registry_apt_healthcheck.test[1], 'scheme': _registry_scheme}")


def test_plain_http_by_default():
    """Without TLS the containers' definitions are those of the role before TLS existed (no recreation)."""
    files = render_role_templates("registry", ["nginx.conf"], {}, computed=COMPUTED)
    got = json.loads(files["computed.json"])
    assert got["scheme"] == "http" and got["volumes"] == [] and got["labels"] == {}
    assert got["env"] == {"REGISTRY_HTTP_ADDR": ":5000", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/var/lib/registry"}
    assert got["health"] == "wget -q -O /dev/null http://127.0.0.1:5000/v2/ || curl -fsS -o /dev/null http://127.0.0.1:5000/v2/"
    assert got["apt_health"] == ("wget -q -O /dev/null http://127.0.0.1:8080/Release"
                                 " || curl -fsS -o /dev/null http://127.0.0.1:8080/Release")
    assert "ssl" not in files["nginx.conf"]


def test_tls_serves_both_with_the_server_certificate():
    variables = {"registry_tls_enabled": True, "registry_tls_names": ["registry.site.lan", "10.0.0.7", "fd00::5"],
                 "registry_bind_address": "10.0.0.5", "registry_tls_dir": "/etc/aistack/registry/tls"}
    files = render_role_templates("registry", ["nginx.conf"], variables, computed=COMPUTED)
    got = json.loads(files["computed.json"])
    # Names as DNS:, addresses as IP:, the private address and the loopback always in.
    assert got["san"] == ["DNS:registry.site.lan", "IP:10.0.0.7", "IP:fd00::5", "IP:10.0.0.5", "IP:127.0.0.1"]
    assert got["scheme"] == "https"
    assert got["env"]["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/certs/server.crt"
    assert got["env"]["REGISTRY_HTTP_TLS_KEY"] == "/certs/server.key"
    # Only the server's key and certificate are mounted, never the CA's key.
    assert got["volumes"] == ["/etc/aistack/registry/tls/server.crt:/certs/server.crt:ro",
                              "/etc/aistack/registry/tls/server.key:/certs/server.key:ro"]
    assert list(got["labels"]) == ["io.aistack.tls-hash"]
    assert "https://127.0.0.1:5000/v2/" in got["health"] and "https://127.0.0.1:8080/Release" in got["apt_health"]
    conf = files["nginx.conf"]
    assert "listen 8080 ssl;" in conf and "ssl_certificate /certs/server.crt;" in conf
    assert "ssl_certificate_key /certs/server.key;" in conf and "listen 8080;" not in conf


def test_client_refuses_a_ca_that_is_not_a_certificate():
    """Checked before anything is written (check mode: nothing on this machine changes either way)."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "client", "ansible.builtin.include_role": {"name": "aistack.infra.registry", "tasks_from": "client"},
         "vars": {"registry_client_ca_certificate": "not a certificate", "aistack_image_registry": "registry.site.lan:5000"}}]}]
    proc = run_playbook(play, "--check")
    assert proc.returncode != 0
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert [t["task"]["name"].split(" : ")[-1] for t in failed] == ["Check the CA certificate"]
    assert "must be a PEM certificate" in failed[0]["hosts"]["localhost"]["msg"]
