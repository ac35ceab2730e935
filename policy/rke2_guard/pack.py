"""The policies of the rke2-guard pack: names, levels, descriptions and config schemas.

`build_policies()` only builds objects; `policy/__main__.py` hands them to PolicyPack, whose
constructor blocks serving the engine.
"""

from __future__ import annotations

from pulumi_policy import (EnforcementLevel, Policy, PolicyConfigSchema, ResourceValidationPolicy,
                           StackValidationPolicy)

from . import cis, expiry, gates, replicas, sans

PACK_NAME = "rke2-guard"

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

VOLATILE_IP_SCHEMA = PolicyConfigSchema(properties={
    "allowedIps": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "IP literals or CIDRs known to be stable (e.g. a reserved VIP); not reported.",
    },
    "allowLoadBalancerVip": {
        "type": "boolean", "default": True,
        "description": "Do not report the load balancer VIP: it is the address the cluster owns on purpose.",
    },
})

PASSWORD_SCHEMA = PolicyConfigSchema(properties={
    "minPasswordLength": {
        "type": "integer", "minimum": 1, "default": gates.DEFAULT_MIN_PASSWORD_LENGTH,
        "description": "Shortest bootstrap password accepted.",
    },
    "forbiddenPasswords": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "More passwords to refuse (case-insensitive), on top of the built-in defaults list.",
    },
})

CERT_MANAGER_SCHEMA = PolicyConfigSchema(properties={
    "externalCertManager": {
        "type": "boolean", "default": False,
        "description": "cert-manager is installed outside this stack; do not require it here.",
    },
})


EXPIRY_SCHEMA = PolicyConfigSchema(properties={
    "warningDays": {
        "type": "integer", "minimum": 1, "default": expiry.DEFAULT_WARNING_DAYS,
        "description": "Report stack-owned certificates that expire within this many days.",
    },
})


def build_policies() -> list[Policy]:
    return [
        StackValidationPolicy(
            name="rancher-single-node-replicas",
            description=("Rancher replicas must be 1 on a single schedulable node and never more than the "
                         "schedulable nodes (servers and agents without a NoSchedule or NoExecute taint), "
                         "mandatory because extra replicas add no availability and leave pods Pending or "
                         "starve a small node."),
            validate=replicas.validate_rancher_replicas,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="san-hygiene",
            description=("Every server's tls-san must hold the cluster hostname, the load balancer address "
                         "and VIP, and the kubeconfig and registration hosts, each SAN a lowercase DNS-1123 "
                         "name or IP literal with no wildcard or duplicate, and Rancher's hostname must be a "
                         "DNS name, mandatory because a wrong SAN set only shows up later as 'x509: "
                         "certificate is valid for ...' on every client."),
            validate=sans.STRUCTURE_VALIDATORS,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="san-hygiene-volatile-ip",
            description=("Non-loopback IP literals in tls-san (other than the load balancer VIP and the "
                         "policy config's allowedIps) are reported because they bind the cluster's identity "
                         "to a network location, advisory by default since sites with fixed addresses use "
                         "them on purpose, and mandatory with policy/examples/strict.json."),
            validate=sans.validate_volatile_ips,
            enforcement_level=ADVISORY,
            config_schema=VOLATILE_IP_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="ha-odd-server-count",
            description=("An HA cluster must run an odd number of servers, mandatory because an even etcd "
                         "membership survives no more failures than one server fewer while adding a member "
                         "whose loss or partition can stop the quorum."),
            validate=gates.validate_odd_server_count,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="rke2-version-pinned",
            description=("Every node must install a pinned RKE2 release (vX.Y.Z+rke2rN, never a channel), "
                         "mandatory because an unpinned version makes two runs install different Kubernetes "
                         "releases and can leave Rancher's supported range."),
            validate=gates.validate_rke2_version_pinned,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="helm-chart-version-pinned",
            description=("Every helm Release must pin an exact chart version, mandatory because an unpinned "
                         "chart upgrades cert-manager or Rancher whenever the repository publishes one."),
            validate=gates.validate_chart_version_pinned,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="rancher-bootstrap-password",
            description=("Rancher's bootstrap password must not be a well-known default and must have at "
                         "least minPasswordLength characters (12 by default), mandatory because it is the "
                         "first admin login of a web UI that scanners find quickly."),
            validate=gates.validate_bootstrap_password,
            enforcement_level=MANDATORY,
            config_schema=PASSWORD_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="cluster-token-secret",
            description=("The cluster join token must be a Pulumi secret or generated by the first server, "
                         "never plain text in the stack config, mandatory because whoever reads the token "
                         "can join nodes to the cluster."),
            validate=gates.validate_token_secret,
            enforcement_level=MANDATORY,
        ),
        ResourceValidationPolicy(
            name="kubeconfig-file-mode",
            description=("Servers should write their kubeconfig no wider than 0600, advisory because a wider "
                         "mode is an explicit choice (such as a monitoring group) even though it shows "
                         "cluster-admin credentials to other local users."),
            validate=gates.validate_kubeconfig_mode,
            enforcement_level=ADVISORY,
        ),
        ResourceValidationPolicy(
            name="ssh-host-key-verification",
            description=("SSH to every host should verify its host key (ssh.hostKeys), and the bastion's "
                         "(ssh.bastion.hostKey) when there is one, advisory because a "
                         "first install in a lab rarely has the keys at hand, although an unverified host "
                         "could receive the join token."),
            validate=gates.validate_host_key_verified,
            enforcement_level=ADVISORY,
        ),
        StackValidationPolicy(
            name="cert-manager-for-rancher-tls",
            description=("The stack must install cert-manager when Rancher's TLS source is rancher or "
                         "letsEncrypt, mandatory because without it the Rancher chart fails only after the "
                         "cluster has been built."),
            validate=gates.validate_cert_manager_for_rancher,
            enforcement_level=MANDATORY,
            config_schema=CERT_MANAGER_SCHEMA,
        ),
        StackValidationPolicy(
            name="certificate-expiry-window",
            description=("Certificates the stack owns (the cluster CA set, Rancher's ingress certificate) "
                         "should not be within the warning window of their expiry, advisory because "
                         "renewal is a planned operation, not a reason to block an unrelated change."),
            validate=expiry.validate_certificate_expiry,
            enforcement_level=ADVISORY,
            config_schema=EXPIRY_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="cis-profile",
            description=("Every RKE2 server and agent should run RKE2's CIS profile (cluster.profile: cis), "
                         "advisory by default since development and lab clusters rarely need the hardening, "
                         "and mandatory with policy/examples/cis.json for sites that must meet the benchmark."),
            validate=cis.validate_cis_profile,
            enforcement_level=ADVISORY,
        ),
    ]
