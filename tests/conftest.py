import sys
from pathlib import Path

# The program's packages (components/, policy/) are imported from the project root.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: runs the real Pulumi engine (needs `make toolchain`)")
    config.addinivalue_line("markers", "lab: runs against SSH hosts in Linux namespaces (needs root)")


# Slowest suites first: parallel workers (make test) take modules in collection order, so the
# long host-lab and engine modules start at once and the many short ones fill in around them.
_SLOW_FIRST = ("tests/lab_scenarios/", "tests/lab_selftest/", "tests/engine/")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid
        return next((i for i, prefix in enumerate(_SLOW_FIRST) if path.startswith(prefix)), len(_SLOW_FIRST))
    items.sort(key=rank)  # stable: the order within a suite is kept
