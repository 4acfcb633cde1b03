"""Lay the PyPI `milvus` wheel out as the upstream milvusdb/milvus image does.

The wheel (Milvus 2.3.5 "lite") carries the real `milvus` server binary and its shared
libraries as .lzma files plus a milvus.yaml template; its Python launcher only renders that
template and runs `milvus run standalone`. This script puts the binary in /milvus/bin, the
libraries in /milvus/lib and a milvus.yaml with the upstream image's defaults (external etcd at
localhost:2379, MinIO at localhost:9000, data under /var/lib/milvus) in /milvus/configs, so the
image takes the same command, environment variables and mounted config file as upstream.
"""
import glob
import lzma
import os
import re
import sys
import zipfile

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/milvus"
WHEEL = glob.glob("/tmp/wheels/milvus-*.whl")[0]

# The template's {{ name: default }} placeholders, valued as in the upstream image's milvus.yaml.
VALUES = {
    "etcd_port": "2379",
    "etcd_log_level": "info",
    "etcd_log_path": "stdout",
    "etcd_data_dir": "default.etcd",
    "local_storage_dir": "/var/lib/milvus/data/",
    "rocksmq_data_dir": "/var/lib/milvus/rdb_data",
    "root_coord_port": "53100",
    "proxy_port": "19530",
    "proxy_internal_port": "19529",
    "query_coord_port": "19531",
    "query_node_port": "21123",
    "index_coord_port": "31000",
    "index_node_port": "21121",
    "data_coord_port": "13333",
    "data_node_port": "21124",
    "system_log_path": '""',
    "server_pem_path": "configs/cert/server.pem",
    "server_key_path": "configs/cert/server.key",
    "ca_pem_path": "configs/cert/ca.pem",
    "authorization_enabled": "false",
    "tls_mode": "0",
}
# Lines where the lite template departs from the upstream defaults.
UPSTREAM_LINES = {
    r"^(    embed: )true": r"\1false",
    r"^(  storageType: )local": r"\1remote",
}


def render(template):
    def value(match):
        name = re.sub(r"\(.*\)", "", match.group(1).split(":")[0]).strip()
        if name not in VALUES:
            raise SystemExit("no value for template key %s" % name)
        return VALUES[name]

    text = re.sub(r"\{\{(.*?)\}\}", value, template)
    for pattern, repl in UPSTREAM_LINES.items():
        text, count = re.subn(pattern, repl, text, flags=re.M)
        if count != 1:
            raise SystemExit("pattern %s matched %d lines" % (pattern, count))
    return text


def main():
    for sub in ("bin", "lib", "configs"):
        os.makedirs(os.path.join(ROOT, sub), exist_ok=True)
    with zipfile.ZipFile(WHEEL) as whl:
        for name in whl.namelist():
            if name.startswith("milvus/data/bin/") and name.endswith(".lzma"):
                base = os.path.basename(name)[:-5]
                dest = os.path.join(ROOT, "bin" if base == "milvus" else "lib", base)
                with whl.open(name) as raw, lzma.open(raw) as src, open(dest, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
                os.chmod(dest, 0o755)
        template = whl.read("milvus/data/config.yaml.template").decode("utf-8")
        glog = whl.read("milvus/data/glog.conf")
    with open(os.path.join(ROOT, "configs", "milvus.yaml"), "w", encoding="utf-8") as out:
        out.write(render(template))
    with open(os.path.join(ROOT, "configs", "glog.conf"), "wb") as out:
        out.write(glog)


if __name__ == "__main__":
    main()
