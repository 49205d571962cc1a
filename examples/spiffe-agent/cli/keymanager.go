package cli

import (
	"fmt"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/ca/keymanager/tpm"
)

// tpmKeyManagerKey is where the configuration file has the agent's own key
// made and used by the TPM. SPIRE's agent has no such key manager (only
// "disk" and "memory"), so the name is spiffekit's own, the server's
// key_manager.tpm.
const tpmKeyManagerKey = "key_manager.tpm"

const tpmKeyManagerHelp = `the agent's own key (its agent SVID's) made and used by the TPM 2.0, kept in -data-dir as a blob only
that TPM loads (agent-key.tpmkey): {"device_path": "<TPM device or swtpm socket, default /dev/tpmrm0>"}`

// tpmKeyManagerConfig is key_manager.tpm of the configuration file.
type tpmKeyManagerConfig struct {
	// DevicePath is the TPM; empty means tpm.DefaultDevice.
	DevicePath string `json:"device_path"`
}

// openKeyStore opens the key store of the agent's own key that the
// settings name, or returns nil for the default (a key in memory, saved in
// the data directory as PKCS #8). closeKeys closes it, after the agent.
func openKeyStore(s *settings) (_ agent.KeyStore, closeKeys func() error, err error) {
	c := s.cfg.TPMKeyManager
	if c == nil {
		return nil, func() error { return nil }, nil
	}
	keys, err := tpm.OpenAgentKeys(tpm.AgentKeysConfig{Device: c.DevicePath})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", tpmKeyManagerKey, err) // tpm says "tpm: "
	}
	return keys, keys.Close, nil
}

// keyManagerName names the key store of the settings for the log: "tpm",
// or "disk" (SPIRE's name) or "memory" for the default, with and without
// a data directory.
func keyManagerName(s *settings) string {
	switch {
	case s.cfg.TPMKeyManager != nil:
		return "tpm"
	case s.dataDir != "":
		return "disk"
	}
	return "memory"
}
