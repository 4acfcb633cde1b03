"""The shared CA role (``aistack.infra.private_ca``) run for real on this machine, in a temporary folder.

It makes a CA and a server certificate signed by it for the given names; a second run and check
mode change nothing; new names issue a new server certificate under the same CA; a certificate
that expires within ``private_ca_server_renew_days`` is issued again; the PKCS#8 key format (Kafka's
PEM key store) is honoured; missing required variables fail before anything is written.
"""
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from lib.ansible_run import run_playbook


def play(variables):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "include", "ansible.builtin.include_role": {"name": "aistack.infra.private_ca"}, "vars": variables}]}]


def run(variables, *args):
    proc = run_playbook(play(variables), *args, extra_env={"ANSIBLE_STDOUT_CALLBACK": "json"})
    out = json.loads(proc.stdout) if proc.stdout.lstrip().startswith("{") else None
    return proc, out


def changed(out):
    return out["stats"]["localhost"]["changed"]


def cert(path):
    with open(path, "rb") as fh:
        return x509.load_pem_x509_certificate(fh.read())


def ca_vars(tmp_path, **extra):
    base = {"private_ca_dir": str(tmp_path), "private_ca_name": "test CA",
            "private_ca_server_common_name": "registry.internal",
            "private_ca_server_sans": ["DNS:registry.internal", "IP:10.9.8.7"]}
    base.update(extra)
    return base


def sans(c):
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName)) + sorted(str(a) for a in ext.get_values_for_type(x509.IPAddress))


def test_ca_and_server_certificate_then_unchanged(tmp_path):
    os.chmod(tmp_path, 0o700)
    variables = ca_vars(tmp_path)
    proc, out = run(variables)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert changed(out) > 0
    ca, server = cert(tmp_path / "ca.crt"), cert(tmp_path / "server.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.public_key().curve.name == "secp384r1"
    assert server.issuer == ca.subject
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, ec.ECDSA(server.signature_hash_algorithm))
    assert sans(server) == ["registry.internal", "10.9.8.7"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600

    proc, out = run(variables)
    assert proc.returncode == 0 and changed(out) == 0, proc.stdout[-3000:]
    proc, out = run(variables, "--check", "--diff")
    assert proc.returncode == 0 and changed(out) == 0, proc.stdout[-3000:]
    assert cert(tmp_path / "server.crt").serial_number == server.serial_number

    # A new name: a new server certificate from the same CA.
    proc, out = run(ca_vars(tmp_path, private_ca_server_sans=["DNS:registry.internal", "DNS:mirror.internal"]))
    assert proc.returncode == 0 and changed(out) > 0, proc.stdout[-3000:]
    again = cert(tmp_path / "server.crt")
    assert again.serial_number != server.serial_number
    assert sans(again) == ["mirror.internal", "registry.internal"]
    assert cert(tmp_path / "ca.crt").serial_number == ca.serial_number


def test_expiring_server_certificate_is_issued_again(tmp_path):
    short = ca_vars(tmp_path, private_ca_server_valid_days=10, private_ca_server_renew_days=5)
    proc, out = run(short)
    assert proc.returncode == 0, proc.stdout[-3000:]
    first = cert(tmp_path / "server.crt")
    proc, out = run(short)
    assert proc.returncode == 0 and changed(out) == 0, proc.stdout[-3000:]
    # 10 days left is within a 20-day renewal window: issued again, and then valid for 30 days.
    proc, out = run(ca_vars(tmp_path, private_ca_server_valid_days=30, private_ca_server_renew_days=20))
    assert proc.returncode == 0 and changed(out) > 0, proc.stdout[-3000:]
    renewed = cert(tmp_path / "server.crt")
    assert renewed.serial_number != first.serial_number
    assert (renewed.not_valid_after_utc - first.not_valid_after_utc).days >= 19


def test_pkcs8_server_key(tmp_path):
    proc, out = run(ca_vars(tmp_path, private_ca_server_key_format="pkcs8", private_ca_server_curve="secp256r1"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    key = (tmp_path / "server.key").read_text()
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    assert cert(tmp_path / "server.crt").public_key().curve.name == "secp256r1"


def test_missing_names_fail_before_writing(tmp_path):
    variables = ca_vars(tmp_path)
    del variables["private_ca_server_sans"]
    proc, out = run(variables)
    assert proc.returncode != 0
    assert "private_ca_server_sans" in proc.stdout
    assert list(tmp_path.iterdir()) == []
