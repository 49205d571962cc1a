package cli

import (
	"crypto/x509"
	"fmt"

	"github.com/spiffekit/spiffekit/attest/azureimds"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// azureIMDSKey is where the configuration file holds the azure_imds node
// attestor's settings, as SPIRE's server configuration names it.
const azureIMDSKey = "node_attestors.azure_imds"

const azureIMDSHelp = `the azure_imds node attestor (Azure attested documents):
{"tenants": {"<tenant ID or domain>": {"allowed_subscriptions": ["<subscription ID>"]}} (required),
"root_certificates": "<PEM file>", "intermediate_certificates": "<PEM file>", "issuer_hosts": ["www.microsoft.com"],
"allow_reattestation": false}; present enables it (see README.md)`

// azureIMDSConfig is the node_attestors.azure_imds part of the
// configuration file. tenants and allowed_subscriptions are SPIRE's keys;
// SPIRE's credentials for Azure Resource Manager (auth_type, secret_auth,
// token_auth), allowed_vm_tags and agent_path_template are refused as
// unknown: no lookup is made there.
type azureIMDSConfig struct {
	// Tenants: the tenants whose VMs may attest, by the name their agents
	// give.
	Tenants map[string]azureIMDSTenant `json:"tenants"`
	// RootCertificates: a PEM file of the roots to use instead of Azure's.
	RootCertificates string `json:"root_certificates"`
	// IntermediateCertificates: a PEM file of intermediates to chain
	// through.
	IntermediateCertificates string `json:"intermediate_certificates"`
	// IssuerHosts: the hosts intermediates may be fetched from (nil:
	// www.microsoft.com).
	IssuerHosts []string `json:"issuer_hosts"`
	// AllowReattestation: a VM may attest again while its agent's record
	// exists.
	AllowReattestation bool `json:"allow_reattestation"`
}

// azureIMDSTenant is one tenant of azureIMDSConfig.
type azureIMDSTenant struct {
	// AllowedSubscriptions: the tenant's subscriptions whose VMs may
	// attest.
	AllowedSubscriptions []string `json:"allowed_subscriptions"`
}

// newAzureIMDS returns the azure_imds attestor of c, reading its
// certificate files.
func newAzureIMDS(c *azureIMDSConfig) (*azureimds.Server, error) {
	tenants := make(map[string]azureimds.TenantConfig, len(c.Tenants))
	for name, t := range c.Tenants {
		tenants[name] = azureimds.TenantConfig{Subscriptions: t.AllowedSubscriptions}
	}
	var roots, intermediates []*x509.Certificate
	var err error
	if c.RootCertificates != "" {
		if roots, err = readCertificates(c.RootCertificates); err != nil {
			return nil, fmt.Errorf("%s.root_certificates: %w", azureIMDSKey, err)
		}
	}
	if c.IntermediateCertificates != "" {
		if intermediates, err = readCertificates(c.IntermediateCertificates); err != nil {
			return nil, fmt.Errorf("%s.intermediate_certificates: %w", azureIMDSKey, err)
		}
	}
	s, err := azureimds.NewServer(azureimds.ServerConfig{
		Tenants:            tenants,
		Roots:              roots,
		Intermediates:      intermediates,
		IssuerHosts:        c.IssuerHosts,
		AllowReattestation: c.AllowReattestation,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", azureIMDSKey, err)
	}
	return s, nil
}

// maxCertificatesFile bounds a PEM file of certificates.
const maxCertificatesFile = 1 << 20

// readCertificates reads a PEM file of one or more certificates.
func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := atomicfile.Read(path, maxCertificatesFile)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}
