package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager/pkcs11"
	"github.com/spiffekit/spiffekit/ca/keymanager/tpm"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
)

// Where the configuration file holds the key managers. SPIRE has neither
// (its built-in key managers are disk, memory and cloud KMSs), so the
// keys are spiffekit's own.
const (
	pkcs11KeyManagerKey = "key_manager.pkcs11"
	tpmKeyManagerKey    = "key_manager.tpm"
)

const pkcs11KeyManagerHelp = `CA keys in a PKCS#11 token (an HSM), which signs: {"module_path": "<PKCS#11 library>",
"token_label": "<label>" or "token_serial": "<serial>", "pin_file": "<file, mode 0600>" or "pin": "<PIN>",
"key_label_prefix": "<prefix of the keys' labels, default spiffekit->"}`

const tpmKeyManagerHelp = `CA keys made and used by the TPM: {"device_path": "<TPM device or swtpm socket, default
/dev/tpmrm0>", "keys_path": "<directory of the key blobs, default <data-dir>/tpm-keys>"}`

// pkcs11KeyManagerConfig is key_manager.pkcs11 of the configuration file.
type pkcs11KeyManagerConfig struct {
	// ModulePath is the token's PKCS#11 library.
	ModulePath string `json:"module_path"`
	// TokenLabel or TokenSerial selects the token.
	TokenLabel  string `json:"token_label"`
	TokenSerial string `json:"token_serial"`
	// PINFile is a file holding the user PIN (mode 0600); PIN is the PIN
	// itself. Exactly one.
	PINFile string `json:"pin_file"`
	PIN     string `json:"pin"`
	// KeyLabelPrefix starts the label of every key (pkcs11.Config.LabelPrefix).
	KeyLabelPrefix string `json:"key_label_prefix"`
}

// tpmKeyManagerConfig is key_manager.tpm of the configuration file.
type tpmKeyManagerConfig struct {
	// DevicePath is the TPM; empty means tpm.DefaultDevice.
	DevicePath string `json:"device_path"`
	// KeysPath is the directory of the key blobs; empty means
	// <data-dir>/tpm-keys.
	KeysPath string `json:"keys_path"`
}

// maxPINFileSize bounds a PIN file.
const maxPINFileSize = 4 << 10

// openKeyManager opens the key manager the configuration names, or
// returns nil when it names none (the CA keys are then files in the data
// directory). It runs once the data directory exists and is locked, and
// after checkKeyManager.
func openKeyManager(rc runConfig) (_ ca.KeyManager, closeKeys func() error, err error) {
	switch {
	case rc.PKCS11KeyManager != nil:
		c := rc.PKCS11KeyManager
		pin := c.PIN
		switch {
		case c.PIN != "" && c.PINFile != "":
			return nil, nil, usagef("%s: pin and pin_file: give one", pkcs11KeyManagerKey)
		case c.PINFile != "":
			b, err := atomicfile.ReadPrivate(c.PINFile, maxPINFileSize)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: reading pin_file: %w", pkcs11KeyManagerKey, err)
			}
			pin = strings.TrimSpace(string(b))
		}
		km, err := pkcs11.Open(pkcs11.Config{Module: c.ModulePath, TokenLabel: c.TokenLabel, TokenSerial: c.TokenSerial,
			PIN: pin, LabelPrefix: c.KeyLabelPrefix})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", pkcs11KeyManagerKey, err) // pkcs11 says "pkcs11: "
		}
		return km, km.Close, nil
	case rc.TPMKeyManager != nil:
		c := rc.TPMKeyManager
		dir := c.KeysPath
		if dir == "" {
			dir = filepath.Join(rc.DataDir, "tpm-keys")
		}
		km, err := tpm.Open(tpm.Config{Device: c.DevicePath, Dir: dir})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", tpmKeyManagerKey, err) // tpm says "tpm: "
		}
		return km, km.Close, nil
	}
	return nil, nil, nil
}

// checkKeyManager refuses, before anything is opened, a key manager
// section that cannot work.
func checkKeyManager(rc runConfig) error {
	if c := rc.PKCS11KeyManager; c != nil {
		switch {
		case c.ModulePath == "":
			return usagef("%s: module_path is required", pkcs11KeyManagerKey)
		case (c.TokenLabel == "") == (c.TokenSerial == ""):
			return usagef("%s: one of token_label and token_serial is required", pkcs11KeyManagerKey)
		case c.PIN == "" && c.PINFile == "":
			return usagef("%s: pin_file (or pin) is required", pkcs11KeyManagerKey)
		}
	}
	if rc.PKCS11KeyManager != nil && rc.TPMKeyManager != nil {
		return usagef("%s and %s: one key manager only", pkcs11KeyManagerKey, tpmKeyManagerKey)
	}
	return nil
}

// keyManagerKind names the key manager of rc for the log.
func keyManagerKind(rc runConfig) string {
	if rc.TPMKeyManager != nil {
		return "tpm"
	}
	return "pkcs11"
}
