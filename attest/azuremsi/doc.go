// Package azuremsi is the Azure managed identity node attestor,
// azure_msi, both sides: an agent on an Azure VM presents an access token
// that Microsoft Entra ID issued to the VM's managed identity, and the
// server admits the identity if Microsoft's signature holds, the token is
// for the server's resource, and its tenant is allowed.
//
// # Protocol
//
//  1. The agent ([Client]) asks the instance metadata service for a token
//     (GET /metadata/identity/oauth2/token?api-version=2018-02-01&
//     resource=<resource>, with "Metadata: true") and sends it as SPIRE's
//     azure_msi payload, {"token": ...} ([Payload]), so that agents and
//     servers of either project interoperate.
//  2. The server ([Server]) verifies the token (see [Server.Attest])
//     against the signing keys its tenant publishes (Entra's JWKS,
//     fetched and cached), and returns the agent ID
//     spiffe://<trust domain>/spiffekit/agent/azure_msi/<tenant ID>/
//     <principal ID> with selectors of type "azure_msi".
//
// There is no challenge: the token carries no nonce of the server's. What
// keeps a copied token from admitting a second node is trust on first
// use, as for aws_iid: the server admits an agent ID once while its record
// exists (attest.NodeResult.CanReattest is false unless
// [ServerConfig].AllowReattestation), and the token expires within hours.
// Evicting the agent frees the ID. Since the agent ID is the identity's,
// VMs that share a user-assigned identity share an agent ID: only the
// first of them attests.
//
// # Threats and the checks that answer them
//
//   - A token made up or changed: RS256 only (jwt.ParseSigned refuses
//     "none", HS256 and everything else before a key is looked at), the
//     key named by "kid" in the tenant's own JWKS (RSA, at least 2,048
//     bits, for signing), one signature.
//   - A token of someone else's tenant (anyone can make a tenant and a
//     VM, and Microsoft signs their tokens with the same keys): the tenant
//     allow-list is required, the issuer must be the tenant's, and the
//     tenant's keys are fetched from the tenant's own JWKS URL.
//   - A token meant for another service (any workload with the identity
//     can get one for any resource): the audience must be exactly the
//     resource configured for the tenant.
//   - An old token: "exp" is required, "exp", "nbf" and "iat" are checked
//     with [Leeway].
//   - A token replayed by someone who saw it: trust on first use, above.
//   - A flood of tokens naming unknown key IDs: the keys are fetched again
//     at most once every five minutes for them.
//   - A hostile payload: at most [attest.MaxNodePayload] bytes, a token of
//     at most [MaxTokenSize]; tenant and subject must be GUIDs, and the
//     resource ID's parts match Azure's naming rules, before they become
//     a SPIFFE ID's path or selectors. The parsers are fuzzed.
//   - On the agent, a metadata service that stalls or floods: one fetch is
//     bounded by [ClientConfig].Timeout, each response by 32 KiB; no proxy
//     is used, no redirect followed.
//
// # Resource Manager lookups
//
// With a tenant's [TenantConfig].ARM (SPIRE's app_id and app_secret), the
// server also reads, through Azure Resource Manager's REST API with a
// bearer token the application gets from Entra ID (client credentials),
// the VM the token's xms_mirid names and its network interfaces, for
// SPIRE's network-security-group, virtual-network and
// virtual-network-subnet selectors. The VM must be the one asked for, and
// its system-assigned identity the token's subject (an identity removed
// from the VM, or a VM made again under the name, is refused); each
// interface must be the one the VM names. Every call of one attestation is
// bounded by [ARMConfig].Timeout and each response by [MaxARMResponse]; a
// failed call refuses the attestation, never admits with fewer selectors.
// The tests run against a local stand-in of the token endpoint and of
// Resource Manager that speaks their REST shapes
// (internal/testing/azuretest): Azure itself cannot be reached from them.
//
// Not done here, unlike SPIRE's plugin: the lookup of a user-assigned
// identity's or a scale set's VMs (a token naming no VM is refused when
// the lookup is on), and the server's own managed identity as credentials
// (use_msi).
//
// # Usage
//
// On the server:
//
//	srv, err := azuremsi.NewServer(azuremsi.ServerConfig{Tenants: map[string]azuremsi.TenantConfig{
//		"72f988bf-86f1-41af-91ab-2d7cd011db47": {ResourceID: "api://spiffe-server"},
//	}})
//	res, err := srv.Attest(ctx, td, payload, nil)
//
// On the VM:
//
//	client, err := azuremsi.NewClient(azuremsi.ClientConfig{ResourceID: "api://spiffe-server"})
//	payload, err := client.Payload(ctx)
package azuremsi
