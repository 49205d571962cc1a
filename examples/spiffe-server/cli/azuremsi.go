package cli

import (
	"fmt"

	"github.com/spiffekit/spiffekit/attest/azuremsi"
)

// azureMSIKey is where the configuration file holds the azure_msi node
// attestor's settings, as SPIRE's server configuration names it.
const azureMSIKey = "node_attestors.azure_msi"

const azureMSIHelp = `the azure_msi node attestor (Azure managed identity tokens):
{"tenants": {"<tenant ID>": {"resource_id": "<audience>"}} (required; resource_id defaults to
https://management.azure.com/), "keys_url": "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
"allow_reattestation": false}; present enables it (see README.md)`

// azureMSIConfig is the node_attestors.azure_msi part of the
// configuration file. tenants and resource_id are SPIRE's keys; SPIRE's
// credentials for Azure Resource Manager (use_msi, subscription_id,
// app_id, app_secret) are refused as unknown: no lookup is made there.
type azureMSIConfig struct {
	// Tenants: the tenants whose managed identities may attest, by ID.
	Tenants map[string]azureMSITenant `json:"tenants"`
	// KeysURL: the tenants' JWKS, {tenant} standing for the tenant ID.
	KeysURL string `json:"keys_url"`
	// AllowReattestation: an identity may attest again while its agent's
	// record exists.
	AllowReattestation bool `json:"allow_reattestation"`
}

// azureMSITenant is one tenant of azureMSIConfig.
type azureMSITenant struct {
	// ResourceID: the audience of the tenant's tokens.
	ResourceID string `json:"resource_id"`
}

// newAzureMSI returns the azure_msi attestor of c.
func newAzureMSI(c *azureMSIConfig) (*azuremsi.Server, error) {
	tenants := make(map[string]azuremsi.TenantConfig, len(c.Tenants))
	for id, t := range c.Tenants {
		tenants[id] = azuremsi.TenantConfig{ResourceID: t.ResourceID}
	}
	s, err := azuremsi.NewServer(azuremsi.ServerConfig{
		Tenants:            tenants,
		KeysURL:            c.KeysURL,
		AllowReattestation: c.AllowReattestation,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", azureMSIKey, err)
	}
	return s, nil
}
