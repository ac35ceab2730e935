"""rke2-rancher components: RKE2Server, RKE2Agent, HALoadBalancer, CertManager, RancherRelease."""
