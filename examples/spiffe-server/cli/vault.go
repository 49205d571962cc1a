package cli

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spiffekit/spiffekit/ca/upstream/vault"
)

// vaultKey is where the configuration file holds the Vault upstream
// authority, with the keys of SPIRE's UpstreamAuthority "vault".
const vaultKey = "upstream_authority.vault"

const vaultHelp = `the upstream CA is Vault's or OpenBao's PKI engine, SPIRE's UpstreamAuthority "vault":
{"vault_addr": "<URL, default $VAULT_ADDR>", "namespace": "<default $VAULT_NAMESPACE>",
"pki_mount_point": "<default pki>", "ca_cert_path": "<PEM file, default $VAULT_CACERT>",
"insecure_skip_verify": false, and one of "token_auth": {"token": "<default $VAULT_TOKEN>"},
"approle_auth": {"approle_auth_mount_point", "approle_id", "approle_secret_id"
(defaults approle, $VAULT_APPROLE_ID, $VAULT_APPROLE_SECRET_ID)}, "k8s_auth":
{"k8s_auth_mount_point", "k8s_auth_role_name", "token_path"}, "cert_auth":
{"cert_auth_mount_point", "cert_auth_role_name", "client_cert_path", "client_key_path"
(defaults cert, $VAULT_CLIENT_CERT, $VAULT_CLIENT_KEY)}} (see README.md)`

// vaultConfig is upstream_authority.vault of the configuration file, with
// the keys of SPIRE's plugin_data. A key left out takes the environment
// variable SPIRE takes.
type vaultConfig struct {
	VaultAddr          string `json:"vault_addr"`
	Namespace          string `json:"namespace"`
	PKIMountPoint      string `json:"pki_mount_point"`
	CACertPath         string `json:"ca_cert_path"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`

	TokenAuth *struct {
		Token string `json:"token"`
	} `json:"token_auth"`
	AppRoleAuth *struct {
		MountPoint string `json:"approle_auth_mount_point"`
		ID         string `json:"approle_id"`
		SecretID   string `json:"approle_secret_id"`
	} `json:"approle_auth"`
	K8sAuth *struct {
		MountPoint string `json:"k8s_auth_mount_point"`
		RoleName   string `json:"k8s_auth_role_name"`
		TokenPath  string `json:"token_path"`
	} `json:"k8s_auth"`
	CertAuth *struct {
		MountPoint     string `json:"cert_auth_mount_point"`
		RoleName       string `json:"cert_auth_role_name"`
		ClientCertPath string `json:"client_cert_path"`
		ClientKeyPath  string `json:"client_key_path"`
	} `json:"cert_auth"`
}

// vaultAuth returns the one authentication method of c, its keys
// completed from the environment.
func vaultAuth(c *vaultConfig) (vault.Auth, error) {
	var auths []vault.Auth
	if a := c.TokenAuth; a != nil {
		auths = append(auths, &vault.TokenAuth{Token: cmp.Or(a.Token, os.Getenv("VAULT_TOKEN"))})
	}
	if a := c.AppRoleAuth; a != nil {
		auths = append(auths, &vault.AppRoleAuth{Mount: a.MountPoint,
			RoleID: cmp.Or(a.ID, os.Getenv("VAULT_APPROLE_ID")), SecretID: cmp.Or(a.SecretID, os.Getenv("VAULT_APPROLE_SECRET_ID"))})
	}
	if a := c.K8sAuth; a != nil {
		auths = append(auths, &vault.KubernetesAuth{Mount: a.MountPoint, Role: a.RoleName, TokenFile: a.TokenPath})
	}
	if a := c.CertAuth; a != nil {
		auths = append(auths, &vault.CertAuth{Mount: a.MountPoint, Role: a.RoleName,
			CertFile: cmp.Or(a.ClientCertPath, os.Getenv("VAULT_CLIENT_CERT")), KeyFile: cmp.Or(a.ClientKeyPath, os.Getenv("VAULT_CLIENT_KEY"))})
	}
	if len(auths) != 1 {
		return nil, errors.New("exactly one of token_auth, approle_auth, k8s_auth and cert_auth is required")
	}
	return auths[0], nil
}

// checkVault refuses, before anything is opened, an upstream_authority.vault
// that cannot work, or an upstream CA given twice.
func checkVault(rc *runConfig) error {
	c := rc.Vault
	if c == nil {
		return nil
	}
	if rc.UpstreamCACert != "" || rc.UpstreamCAKey != "" {
		return fmt.Errorf("%s and an upstream CA from files (upstream_authority.disk, -upstream-ca-cert): one upstream authority only", vaultKey)
	}
	if cmp.Or(c.VaultAddr, os.Getenv("VAULT_ADDR")) == "" {
		return fmt.Errorf("%s: vault_addr is required (or $VAULT_ADDR)", vaultKey)
	}
	if _, err := vaultAuth(c); err != nil {
		return fmt.Errorf("%s: %w", vaultKey, err)
	}
	return nil
}

// newVault reads the files of upstream_authority.vault and returns its
// client, which connects to nothing yet.
func newVault(c *vaultConfig, log *slog.Logger) (*vault.Client, error) {
	auth, err := vaultAuth(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vaultKey, err)
	}
	up, err := vault.New(vault.Config{
		Address:            cmp.Or(c.VaultAddr, os.Getenv("VAULT_ADDR")),
		Namespace:          cmp.Or(c.Namespace, os.Getenv("VAULT_NAMESPACE")),
		PKIMount:           c.PKIMountPoint,
		CACertFile:         cmp.Or(c.CACertPath, os.Getenv("VAULT_CACERT")),
		InsecureSkipVerify: c.InsecureSkipVerify,
		Auth:               auth,
		Logger:             log.With("component", "upstream_authority"),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vaultKey, err) // vault says "vault: "
	}
	return up, nil
}
