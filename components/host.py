"""Remote-command plumbing shared by the host components: SSH connection and steps.

Every host step is one pulumi_command.remote.Command, so `pulumi preview --diff`
names the exact step a change touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
from pulumi_command import remote

from . import scripts
from .config import SshConfig, read_private_key


def load_private_key(ssh: SshConfig) -> pulumi.Output[str]:
    """The SSH private key as a secret. load_stack_config has already read a key file (so an
    unreadable one at `up` is a one-line ConfigError before anything is registered); a
    missing file only warns during preview (preview never connects)."""
    if ssh.private_key is None:  # a StackConfig built without load_stack_config (tests)
        ssh, warning = read_private_key(ssh, dry_run=pulumi.runtime.is_dry_run())
        if warning:
            pulumi.log.warn(warning)
    return pulumi.Output.secret(ssh.private_key or "")


# Every SSH dial (host or bastion): attempts after the first, and seconds for each TCP connect.
DIAL_ERROR_LIMIT = 5
PER_DIAL_TIMEOUT = 10


@dataclass(frozen=True)
class HostAccess:
    """How to reach one host over SSH."""

    address: str
    """Where SSH connects (may change when the host moves; changes re-run no installs)."""
    ssh: SshConfig
    """User, port and host keys."""
    private_key: pulumi.Output[str]
    """Secret private key."""
    rebuild: str | None = None
    """servers[].rebuild: part of every step's triggers here (but the uninstall's), so a new
    label runs them all again on the rebuilt host."""

    def connection(self) -> remote.ConnectionArgs:
        return remote.ConnectionArgs(
            host=self.address,
            port=self.ssh.port,
            user=self.ssh.user,
            private_key=self.private_key,
            host_key=self.ssh.host_keys.get(self.address),
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
            proxy=self._proxy(),
        )

    def _proxy(self) -> remote.ProxyConnectionArgs | None:
        """ssh.bastion as pulumi-command's `proxy`: the bastion is dialed first (its own
        timeout and retries), then this host's address is dialed from it (direct-tcpip), so
        the address is resolved and routed on the bastion's side."""
        b = self.ssh.bastion
        if b is None:
            return None
        return remote.ProxyConnectionArgs(
            host=b.address,
            port=b.port,
            user=b.user,
            private_key=pulumi.Output.secret(b.private_key) if b.private_key else self.private_key,
            host_key=b.host_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )

    @property
    def host_key_verified(self) -> bool:
        return self.address in self.ssh.host_keys

    @property
    def bastion_props(self) -> dict:
        """Component props for policies when a bastion is set (none otherwise, so stacks
        without one keep their props): its address and whether its host key is pinned."""
        b = self.ssh.bastion
        if b is None:
            return {}
        return {"bastion": b.address, "bastionHostKeyVerified": b.host_key is not None}


def step(
    name: str,
    host: HostAccess,
    script: str,
    *,
    values: dict | None = None,
    update_values: dict | None = None,
    delete_script: str | None = None,
    delete_values: dict | None = None,
    stdin: pulumi.Input[str] | None = None,
    triggers: Sequence[pulumi.Input] | None = None,
    secret_output: bool = False,
    rebuild_trigger: bool = True,
    opts: pulumi.ResourceOptions,
) -> remote.Command:
    """One host step running components/scripts/<script> as root.

    `update_values`, when given, renders the same script with other values for updates
    (e.g. `ensure` instead of `restart`); otherwise an update runs the create script,
    which every script makes idempotent. `rebuild_trigger=False` keeps the host's rebuild label
    out of the triggers (the uninstall step: a replacement would run its delete, uninstalling).
    """
    if host.rebuild and rebuild_trigger:
        triggers = [*(triggers or []), f"rebuild:{host.rebuild}"]
    user = host.ssh.user
    create = scripts.as_command(scripts.render(script, name, **(values or {})), user)
    update = None
    if update_values is not None:
        update = scripts.as_command(scripts.render(script, name, **{**(values or {}), **update_values}), user)
    delete = None
    if delete_script is not None:
        delete = scripts.as_command(scripts.render(delete_script, name, **(delete_values or {})), user)
    if secret_output:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["stdout", "stderr"]))
    return remote.Command(
        name,
        connection=host.connection(),
        create=create,
        update=update,
        delete=delete,
        stdin=stdin,
        triggers=list(triggers) if triggers else None,
        # Previous output would travel as SSH environment variables, which sshd refuses.
        add_previous_output_in_env=False,
        logging=remote.Logging.NONE if secret_output else remote.Logging.STDERR,
        opts=opts,
    )
