// Package vault is a [ca.UpstreamAuthority] backed by the PKI secrets engine
// of HashiCorp Vault or OpenBao: each X.509 CA of a rotating CA (package
// ca/rotation) is an intermediate signed by the engine's sign-intermediate
// endpoint, and the trust bundle holds the roots of the mount's CA chain.
// It talks to Vault with github.com/hashicorp/vault/api, Vault's own
// client, and takes the configuration keys of SPIRE's UpstreamAuthority
// "vault" (vault_addr, namespace, pki_mount_point, ca_cert_path,
// insecure_skip_verify and the token_auth, approle_auth, k8s_auth and
// cert_auth methods).
//
// # Usage
//
//	up, err := vault.New(vault.Config{
//		Address:    "https://vault.example.org:8200",
//		PKIMount:   "pki",
//		CACertFile: "/etc/vault/ca.pem",
//		Auth:       &vault.AppRoleAuth{RoleID: roleID, SecretID: secretID},
//	})
//	go up.Run(ctx) // keeps the token renewed; optional
//	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td, Upstream: up})
//
// # What is asked of Vault
//
// MintX509CA sends POST /v1/<mount>/root/sign-intermediate with the CSR,
// uri_sans set to the trust domain's SPIFFE ID, common_name set to the
// trust domain name (kept out of the SANs), organization "SPIFFE", the
// requested TTL in seconds and format pem_bundle, then reads the mount's CA
// chain from GET /v1/<mount>/cert/ca_chain. The token needs "update" on
// <mount>/root/sign-intermediate; the chain endpoint is unauthenticated.
// Vault caps the lifetime at the mount's max TTL and at its issuer's
// expiry. Before an answer is used, it is checked: the certificate must
// hold the CSR's key, be a CA, carry exactly the trust domain's SPIFFE ID
// as URI SAN, and chain to the roots of the mount's CA chain (its
// self-signed certificates, or its last certificate when Vault knows no
// self-signed one), at the current time or, if Vault's clock runs up to 5
// minutes ahead, at the certificate's start. Bodies over 1 MiB are
// refused. Renewing the CA before
// it expires is the rotation's work: each new CA is a new MintX509CA.
//
// # Authentication
//
// [TokenAuth] uses a given token, looked up with auth/token/lookup-self.
// [AppRoleAuth], [KubernetesAuth] and [CertAuth] log in at
// auth/<mount>/login and can log in again. A renewable token is renewed
// (auth/token/renew-self) by [Client.Run] at two thirds of its lease, and
// by MintX509CA when less than a tenth is left; a token that cannot be
// renewed any more, or that Vault refuses (403), is replaced by a new login
// where the method allows it. Tokens, secret IDs and service account tokens
// are never logged nor put in errors.
//
// # Testing
//
// A real Vault or OpenBao server cannot be built or run here, so this
// package is tested against internal/testing/vaulttest: a local server that
// speaks Vault's real HTTP API for exactly the endpoints above, with the
// request and response shapes of Vault's API documentation (and of its PKI
// engine's code where the documentation is loose), and a real in-memory CA
// that signs the CSR.
package vault
