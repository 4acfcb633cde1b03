"""Module tests run main() in the pytest process, as a module runs on a target host."""
import pytest
from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def target_side(monkeypatch):
    """ansible-core 2.19 marks the process as the controller once any controller code is imported
    (ansible.errors, a filter plugin's tests...), and from then on module warnings go to the
    controller's display instead of the module's result. main() must run as on a target host,
    whatever other test files imported before."""
    monkeypatch.setattr(_internal, "is_controller", False)
