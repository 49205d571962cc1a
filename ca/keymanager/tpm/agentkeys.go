package tpm

import (
	"context"
	"crypto"
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/ca"
)

// AgentKeyFile is the file of a node agent's data directory that keeps
// the blob of its TPM key (see [AgentKeys]).
const AgentKeyFile = "agent-key" + keyExt

// agentKeyID names the agent's key in errors.
const agentKeyID = "agent"

// AgentKeysConfig says which TPM makes a node agent's keys.
type AgentKeysConfig struct {
	// Device is the TPM: a character device, or a unix socket serving raw
	// TPM commands (swtpm). Empty means DefaultDevice.
	Device string

	// Open, if set, opens the TPM instead of Device.
	Open func() (transport.TPMCloser, error)
}

// AgentKeys keeps a node agent's own private key, the key of its agent
// SVID, in the TPM: it implements the KeyStore of package agent
// (agent.Config.KeyStore). Each key is an ECDSA P-256 key that the TPM
// creates under its storage root key with the attributes of the keys of
// [KeyManager] (fixedTPM, fixedParent, sensitiveDataOrigin): it cannot
// leave the TPM, and every signature the agent makes with it (the CSR of
// each renewal, each TLS handshake with a server) is made by the TPM.
//
// The agent keeps the key's blob, a key file of the format of
// [KeyManager]'s (the public area, and the private area encrypted under
// the SRK), in its data directory as [AgentKeyFile], mode 0600. Only the
// TPM that created it can load it: [AgentKeys.LoadKey] refuses a blob of
// another TPM, an altered one, and one whose key could leave the TPM,
// with an error saying so. Each renewal of the agent SVID creates a new
// key.
//
// It holds the TPM open from OpenAgentKeys to Close, which the caller
// calls once the agent is closed, and sends it one command at a time; it
// is safe for concurrent use. A TPM device without a resource manager
// (/dev/tpm0), or swtpm's socket, serves one client at a time: give the
// TPM's resource-managed device (/dev/tpmrm0) when a node attestor uses
// the TPM too.
type AgentKeys struct {
	km *KeyManager
}

// OpenAgentKeys opens the TPM and creates its storage root key. The owner
// hierarchy must have an empty authorization value.
func OpenAgentKeys(cfg AgentKeysConfig) (*AgentKeys, error) {
	km, err := openTPM("", cfg.Device, cfg.Open)
	if err != nil {
		return nil, err
	}
	return &AgentKeys{km: km}, nil
}

// KeyFile returns AgentKeyFile.
func (a *AgentKeys) KeyFile() string { return AgentKeyFile }

// GenerateKey has the TPM create a new ECDSA P-256 key, and returns it with
// its blob, for the agent to keep.
func (a *AgentKeys) GenerateKey(ctx context.Context) (crypto.Signer, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("tpm: %w", err)
	}
	tmpl, err := template(ca.ECP256)
	if err != nil {
		return nil, nil, err
	}
	k := a.km
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil, nil, errClosed
	}
	s, data, err := k.create(agentKeyID, ca.ECP256, tmpl)
	if err != nil {
		return nil, nil, err
	}
	return s, data, nil
}

// LoadKey loads the key of a blob GenerateKey returned in the TPM, and
// returns it. A blob of another TPM, or altered, fails with "the TPM
// refuses its file"; one that does not parse, or whose key could leave
// the TPM, fails too, saying why.
func (a *AgentKeys) LoadKey(ctx context.Context, blob []byte) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	k := a.km
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil, errClosed
	}
	s, err := k.loadBlob(agentKeyID, blob)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close unloads the keys and the SRK from the TPM and closes it. The keys
// handed out fail afterwards.
func (a *AgentKeys) Close() error { return a.km.Close() }
