"""Assembles the rke2-guard policy pack. PolicyPack's constructor serves the engine and blocks,
so the rules live in rke2_guard/ where tests import them."""

from pulumi_policy import PolicyPack

from rke2_guard import build_policies

PolicyPack(name="rke2-guard", policies=build_policies())
