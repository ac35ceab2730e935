import sys
from pathlib import Path

# The program's packages (components/, policy/) are imported from the project root.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
