// Package shim exposes the upstream Terraform TLS provider to pulumi-tls. pulumi-tls's
// provider module replaces github.com/hashicorp/terraform-provider-tls/shim with a local
// ./shim directory that its module zip does not carry; toolchain/bootstrap.sh puts this
// file there (with a generated go.mod) so the provider builds from the module proxy.
// It must live under terraform-provider-tls's module path to import its internal package.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	tlsprovider "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns the upstream TLS provider.
func NewProvider() provider.Provider {
	return tlsprovider.New()
}
