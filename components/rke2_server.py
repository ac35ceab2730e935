"""RKE2Server: one RKE2 server node, installed and kept converged over SSH."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Sequence

import pulumi

from . import identity, kubeconfig, mobile, node_prep, render, upgrade
from .config import StackConfig
from .host import HostAccess, step
from .builtin_sans import builtin_sans
from .node_steps import file_step, install_step, uninstall_step

# Disk RKE2 needs for its images and etcd before it is worth starting.
MIN_DISK_MB = 4096


@dataclass(frozen=True)
class RKE2ServerArgs:
    stack: StackConfig
    """The validated stack config."""
    index: int
    """Position in `servers`: 0 initialises the cluster, the others join it."""
    host: HostAccess
    """SSH access to this server."""
    token: pulumi.Output[str] | None = None
    """Secret join token to write; None on servers[0] when RKE2 should generate it."""
    join_after: Sequence[pulumi.Resource] = ()
    """Readiness steps that must finish first (the previous server: etcd admits one learner at a time)."""
    ca_files: pulumi.Output[dict] | None = None
    """Secret CA set to place before the first start (cluster.ca: generated)."""
    rotate_after: Sequence[pulumi.Resource] = ()
    """The previous server's certificate rotation: rotations run one server at a time."""
    upgrade_guard: pulumi.Resource | None = None
    """servers[0]'s upgrade guard (None on servers[0], which creates it): runs before anything here."""
    first_host: HostAccess | None = None
    """SSH access to servers[0] (joining servers): a rebuilt server's stale etcd member is removed there."""


class RKE2Server(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str] | None
    """Secret kubeconfig pointing at https://<cluster.hostname>:6443 (servers[0] only)."""
    token: pulumi.Output[str] | None
    """Secret join token as the server wrote it (servers[0] without a configured token)."""
    ready: pulumi.Output[str]
    """Resolves once the API server answered /readyz and the SANs are refreshed."""

    def __init__(self, name: str, args: RKE2ServerArgs, opts: pulumi.ResourceOptions | None = None):
        stack, i = args.stack, args.index
        cluster = stack.cluster
        cfg = render.server_config(stack, i)
        sans = render.tls_sans(stack)
        props = self._props(args, cfg, sans)
        super().__init__("rke2:index:RKE2Server", name, props, opts)

        host = args.host

        def after(*deps: pulumi.Resource | None) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in deps if d is not None])

        # HA: a server taken out of `servers` leaves etcd before RKE2 is uninstalled.
        leave_api = render.api_via_load_balancer(stack) if len(stack.servers) > 1 else None
        # servers[0] runs two guards before any host changes (every node's preflight, and so
        # all that follows, waits for the upgrade guard, which waits for the membership guard):
        # the membership guard refuses a change of `servers` that would take away etcd quorum
        # (it reads the live cluster, so it must run before anything restarts a server); the
        # upgrade guard refuses a bad version change and snapshots etcd.
        self.upgrade_guard = args.upgrade_guard
        membership_guard = None
        if i == 0:
            membership_guard = step(f"{name}-membership-guard", host, "membership-guard.sh",
                                    values={"SERVERS": " ".join(n.name for n in stack.servers),
                                            "ACTION": "guard"},
                                    update_values={"ACTION": "check"},
                                    triggers=[" ".join(n.name for n in stack.servers)], opts=after())
            self.upgrade_guard = upgrade.guard_step(name, host, cluster, opts=after(membership_guard))
        # After the guards too: its create (re)writes the host's marker, and its command changes
        # with the number of servers, so a refused change of `servers` must not run it first.
        uninstall = uninstall_step(name, host, cluster, "server", leave_api=leave_api,
                                   opts=after(membership_guard if i == 0 else self.upgrade_guard))
        preflight = step(f"{name}-preflight", host, "preflight.sh",
                         values={"ROLE": "server", "MIN_DISK_MB": MIN_DISK_MB, "CA_MODE": cluster.ca},
                         opts=after(uninstall, self.upgrade_guard))
        stable_ip = None
        if cluster.mobile:
            stable_ip = step(f"{name}-stable-ip", host, "stable-ip.sh",
                             values={"STABLE_IP": cluster.mobile_node_ip,
                                     "METHOD": cluster.mobile_interface}, opts=after(preflight))
        cis_check = node_prep.cis_check_step(name, host, cluster, "server", cfg.get("profile"),
                                             opts=after(preflight))
        config = file_step(f"{name}-config", host, render.SERVER_CONFIG_PATH, render.to_yaml(cfg),
                           opts=after(preflight, cis_check))
        registries, registries_trigger = node_prep.registries_step(name, host, stack, opts=after(preflight))
        images = node_prep.images_step(name, host, cluster, opts=after(preflight))
        psa, psa_trigger = node_prep.psa_step(name, host, stack, opts=after(preflight))
        canal_config = None
        if cluster.mobile and mobile.uses_canal(cfg):
            # Before the first start, so the canal chart is installed with it (mobile.py).
            canal_config = file_step(f"{name}-canal-config", host, mobile.CANAL_CONFIG_PATH,
                                     mobile.canal_config(cluster.mobile_node_ip), opts=after(preflight))
        token_file = None
        if args.token is not None:
            # Refuses a token change on an initialised cluster (see scripts/token.sh).
            token_file = step(f"{name}-token", host, "token.sh",
                              values={"DEST": render.TOKEN_CONFIG_PATH, "MODE": "0600"},
                              stdin=pulumi.Output.secret(args.token).apply(identity.token_step_input),
                              secret_output=True, opts=after(preflight))
        place_ca = None
        if args.ca_files is not None:
            place_ca = step(f"{name}-ca", host, "place-ca.sh",
                            stdin=pulumi.Output.secret(args.ca_files).apply(identity.encode_files),
                            secret_output=True, opts=after(preflight))
        etcd_s3 = None
        if cluster.etcd_s3 is not None:
            # cluster.etcdS3: the credentials in their own 0600 drop-in from a secret input.
            etcd_s3 = file_step(f"{name}-etcd-s3", host, render.ETCD_S3_CONFIG_PATH,
                                pulumi.Output.secret(render.etcd_s3_yaml(cluster.etcd_s3)),
                                opts=after(preflight), secret=True)
        stale_member = None
        if i > 0 and args.first_host is not None:
            # A server rebuilt under its old name must not meet its old etcd member when it
            # joins (k3s refuses a duplicate node name): servers[0] removes a stale one first.
            rejoin = step(f"{name}-rejoin-check", host, "rejoin-check.sh", opts=after(preflight))
            # It runs when created (a new server: nothing to remove) and when the server's
            # rebuild label changes (its trigger); any other update (a new address of servers[0],
            # a rejoin-check output recorded at an earlier run) checks nothing.
            rebuild = stack.servers[i].rebuild
            stale_member = step(f"{name}-stale-member", args.first_host, "stale-member.sh",
                                values={"NODE": stack.servers[i].name, "TIMEOUT": cluster.ready_timeout_seconds,
                                        "ACTION": "remove"},
                                update_values={"ACTION": "check"},
                                triggers=[f"rebuild:{rebuild}"] if rebuild else None,
                                stdin=rejoin.stdout, opts=after(rejoin, *args.join_after))
        # One server at a time: the new release lands here once the previous server is Ready.
        install = install_step(name, host, cluster, "server", opts=after(config, stale_member, *args.join_after))
        cis = node_prep.cis_step(name, host, cluster, "server", cfg.get("profile"), opts=after(install))
        join_guard = None
        if i == 0 and len(stack.servers) > 1:
            join_guard = step(f"{name}-join-guard", host, "join-guard.sh",
                              values={"REGISTRATION_URL": render.registration_url(stack)},
                              opts=after(config, token_file))
        service = step(
            f"{name}-service", host, "service.sh",
            values={"UNIT": "rke2-server", "ACTION": "restart",
                    "TIMEOUT": cluster.ready_timeout_seconds,
                    "SINGLE_SERVER": int(len(stack.servers) == 1)},
            update_values={"ACTION": "ensure"},
            # A new version or a changed config (other than tls-san) takes effect on restart.
            triggers=[cluster.version, render.restart_fingerprint(cfg),
                      *([pulumi.Output.secret(render.secret_fingerprint(render.etcd_s3_yaml(cluster.etcd_s3)))]
                        if cluster.etcd_s3 is not None else []), *registries_trigger, *psa_trigger],
            opts=after(install, config, token_file, etcd_s3, stable_ip, canal_config, join_guard, place_ca,
                       registries, images, cis, psa, *args.join_after))
        if cluster.mobile:
            step(f"{name}-dns-follow", host, "dns-follow.sh", opts=after(service))
        san_refresh = step(f"{name}-san-refresh", host, "san-refresh.sh",
                           values={"TIMEOUT": cluster.ready_timeout_seconds,
                                   "BUILTIN_SANS": "\n".join(builtin_sans(cfg)),
                                   "HA": int(len(stack.servers) > 1)},
                           stdin="".join(render.openssl_san_form(s) + "\n" for s in sans),
                           opts=after(service, config))

        self.kubeconfig = self.kubeconfig_expiry = None
        if i == 0 and cluster.ca != "generated":
            # RKE2's rke2.yaml (its client certificate lives a year and is renewed on the host
            # at a start within 120 days of expiry): re-read once per quarter. With
            # cluster.ca: generated the stack issues its own (cluster.py).
            raw = step(f"{name}-kubeconfig", host, "read-file.sh",
                       values={"SOURCE": render.KUBECONFIG_PATH}, secret_output=True,
                       triggers=[kubeconfig.refresh_period(datetime.date.today())],
                       opts=after(san_refresh))
            server_url, context = render.api_endpoint(stack), cluster.hostname
            self.kubeconfig = pulumi.Output.secret(
                raw.stdout.apply(lambda text: render.rewrite_kubeconfig(text, server_url, context)))
            self.kubeconfig_expiry = raw.stdout.apply(kubeconfig.client_cert_expiry)
        self.token = None
        if i == 0 and args.token is None:  # RKE2 generated it: read it back
            read = step(f"{name}-read-token", host, "read-file.sh",
                        values={"SOURCE": render.TOKEN_PATH}, secret_output=True,
                        opts=after(service))
            self.token = pulumi.Output.secret(read.stdout)
        self.rotation = None
        if cluster.certificate_rotation:
            self.rotation = step(f"{name}-rotate-certs", host, "rotate-certs.sh",
                                 values={"TIMEOUT": cluster.ready_timeout_seconds,
                                         "LABEL": cluster.certificate_rotation, "ACTION": "rotate"},
                                 update_values={"ACTION": "check"},
                                 triggers=[cluster.certificate_rotation],
                                 opts=after(san_refresh, *args.rotate_after))
        # After a restart for a new version: this Node Ready at the new kubelet before the next server.
        upgrade_ready = upgrade.ready_step(stack.servers[i].name, host, cluster, cluster.cni,
                                           opts=after(san_refresh))
        self.ready = san_refresh.stdout
        self.readiness = upgrade_ready
        # Props again as outputs: stack policies see a component's outputs, not its inputs.
        self.register_outputs({**props, "ready": self.ready,
                               **({"kubeconfig": self.kubeconfig,
                                   "kubeconfigExpiry": self.kubeconfig_expiry} if self.kubeconfig else {})})

    @staticmethod
    def _props(args: RKE2ServerArgs, cfg: dict, sans: list[str]) -> dict:
        """Validated, non-secret arguments, for CrossGuard policies (keys in camelCase)."""
        stack, node = args.stack, args.stack.servers[args.index]
        lb = stack.load_balancer
        return {
            "nodeName": node.name,
            "address": node.address,
            "index": args.index,
            "serverCount": len(stack.servers),
            "clusterHostname": stack.cluster.hostname,
            "version": stack.cluster.version,
            "configuredTlsSans": list(stack.cluster.tls_sans),
            "tlsSans": sans,
            "kubeconfigServer": render.api_endpoint(stack),
            "registrationAddress": render.registration_url(stack),
            "loadBalancerAddress": lb.address if lb else None,
            "loadBalancerVip": lb.vip if lb else None,
            "mobile": stack.cluster.mobile,
            "nodeIp": cfg.get("node-ip"),
            "labels": list(node.labels),
            "rebuild": node.rebuild,
            "taints": list(node.taints),
            "schedulable": node.schedulable,
            "writeKubeconfigMode": stack.cluster.write_kubeconfig_mode,
            "hostKeyVerified": args.host.host_key_verified,
            **args.host.bastion_props,
            "tokenSource": "secret" if stack.token_is_secret else ("plaintext" if stack.token else "generated"),
            "ca": stack.cluster.ca,
            "retainOnDestroy": stack.cluster.retain_on_destroy,
            "profile": cfg.get("profile"),
            "systemDefaultRegistry": cfg.get("system-default-registry"),
            "registryMirrors": sorted(stack.registries.mirrors) if stack.registries else [],
            # cluster.etcdSnapshots (with RKE2's defaults filled in), only when the stack sets it.
            **render.etcd_snapshot_props(stack),
        }
