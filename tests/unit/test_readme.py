"""The README's config reference matches what config.py reads."""

import re
from pathlib import Path

from components.config import KNOWN_KEYS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_keys() -> set[str]:
    section = README.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([A-Za-z][A-Za-z0-9.]*)` \|", section, re.M)}


def program_keys() -> set[str]:
    keys = set()
    for section, names in KNOWN_KEYS.items():
        if section == "":
            keys |= {n for n in names if n not in KNOWN_KEYS and n not in ("ssh", "cluster")}
        elif section == "servers[]":
            continue  # documented in the `servers` row
        else:
            keys |= {f"{section}.{n}" for n in names}
    return keys | {"servers", "agents"}


# Keys added for issues 10/11 whose README rows were handed to the lead (helpers do not edit
# README.md). Once the README documents them, the test below says so: empty this set then.
PENDING_README_ROWS: set[str] = set()


def test_readme_documents_every_key():
    missing = program_keys() - readme_keys()
    assert not missing - PENDING_README_ROWS, f"README config reference lacks {sorted(missing)}"
    assert missing == PENDING_README_ROWS & program_keys(), \
        f"README now documents {sorted(PENDING_README_ROWS - missing)}: drop them from PENDING_README_ROWS"


def test_readme_documents_no_unknown_key():
    extra = readme_keys() - program_keys()
    assert not extra, f"README documents keys config.py does not read: {sorted(extra)}"
