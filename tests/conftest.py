import sys
from pathlib import Path

# The program's packages (components/, policy/) are imported from the project root.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: runs the real Pulumi engine (needs `make toolchain`)")
    config.addinivalue_line("markers", "lab: runs against SSH hosts in Linux namespaces (needs root)")
