package cli

import (
	"fmt"

	"github.com/spiffekit/spiffekit/attest/azuremsi"
)

// azureMSIKey is where the configuration file holds the azure_msi node
// attestor's settings, as SPIRE's server configuration names it.
const azureMSIKey = "node_attestors.azure_msi"

const azureMSIHelp = `the azure_msi node attestor (Azure managed identity tokens):
{"tenants": {"<tenant ID>": {"resource_id": "<audience>", "app_id": "", "app_secret": ""}} (required; resource_id
defaults to https://management.azure.com/; app_id and app_secret turn on the Resource Manager lookups),
"keys_url": "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys", "arm_endpoint": "` + azuremsi.DefaultARMEndpoint + `",
"login_endpoint": "` + azuremsi.DefaultLoginEndpoint + `", "allow_reattestation": false}; present enables it (see README.md)`

// azureMSIConfig is the node_attestors.azure_msi part of the
// configuration file. tenants, resource_id, app_id and app_secret are
// SPIRE's keys; SPIRE's use_msi and subscription_id are refused as
// unknown (the lookups use an application's credentials, and the
// subscription is the token's).
type azureMSIConfig struct {
	// Tenants: the tenants whose managed identities may attest, by ID.
	Tenants map[string]azureMSITenant `json:"tenants"`
	// KeysURL: the tenants' JWKS, {tenant} standing for the tenant ID.
	KeysURL string `json:"keys_url"`
	// AllowReattestation: an identity may attest again while its agent's
	// record exists.
	AllowReattestation bool `json:"allow_reattestation"`
	// ARMEndpoint, LoginEndpoint: Resource Manager's and Entra ID's roots
	// for the lookups.
	ARMEndpoint   string `json:"arm_endpoint"`
	LoginEndpoint string `json:"login_endpoint"`
}

// azureMSITenant is one tenant of azureMSIConfig.
type azureMSITenant struct {
	// ResourceID: the audience of the tenant's tokens.
	ResourceID string `json:"resource_id"`
	// AppID, AppSecret: an application of the tenant that may read its
	// VMs and network interfaces; giving them turns the Resource Manager
	// lookups on.
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

// newAzureMSI returns the azure_msi attestor of c.
func newAzureMSI(c *azureMSIConfig) (*azuremsi.Server, error) {
	tenants := make(map[string]azuremsi.TenantConfig, len(c.Tenants))
	lookups := false
	for id, t := range c.Tenants {
		tc := azuremsi.TenantConfig{ResourceID: t.ResourceID}
		if t.AppID != "" || t.AppSecret != "" {
			tc.ARM = &azuremsi.ARMConfig{AppID: t.AppID, AppSecret: t.AppSecret, ARMEndpoint: c.ARMEndpoint, LoginEndpoint: c.LoginEndpoint}
			lookups = true
		}
		tenants[id] = tc
	}
	if !lookups && (c.ARMEndpoint != "" || c.LoginEndpoint != "") {
		return nil, fmt.Errorf("%s: arm_endpoint and login_endpoint are for the Resource Manager lookups, which no tenant turns on (app_id and app_secret)", azureMSIKey)
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
