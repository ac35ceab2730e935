"""rke2-rancher: RKE2, cert-manager and Rancher on your own hosts, over SSH.

Reads and validates the whole stack config first, so bad config stops the program
before any resource is registered; then builds the components and exports outputs.
"""

import pulumi

from components.cluster import build
from components.config import ConfigError, load_stack_config

try:
    stack_config = load_stack_config()
except ConfigError as e:
    # One clear line instead of a traceback: the message names key, value and fix.
    pulumi.log.error(str(e))
    raise SystemExit(1) from None

for key, value in build(stack_config).items():
    pulumi.export(key, value)
