"""rke2-guard: CrossGuard policies for stacks that deploy RKE2, cert-manager and Rancher.

Rules live in the modules of this package so tests import them; `policy/__main__.py`
only assembles the pack. This package must not import the program's `components`.
"""

from .pack import PACK_NAME, build_policies

__all__ = ["PACK_NAME", "build_policies"]
