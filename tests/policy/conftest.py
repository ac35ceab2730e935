import sys
from pathlib import Path

# The pack runs with policy/ as its working directory and imports `rke2_guard` from there;
# the tests import it the same way.
POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))
