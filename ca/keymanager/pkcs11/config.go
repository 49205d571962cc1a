package pkcs11

import (
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/ca"
)

// DefaultLabelPrefix starts the label of every key when Config.LabelPrefix
// is empty.
const DefaultLabelPrefix = "spiffekit-"

// Config says which token holds the keys and how to log in to it.
type Config struct {
	// Module is the path of the token's PKCS#11 library (a shared
	// object). Required.
	Module string

	// TokenLabel selects the token by its label; TokenSerial by its
	// serial number. Exactly one is required.
	TokenLabel  string
	TokenSerial string

	// PIN is the user PIN. Required.
	PIN string

	// LabelPrefix starts the label (CKA_LABEL) and ID (CKA_ID) of every
	// key, so that several servers, or other applications, can share a
	// token: a key manager sees only the keys under its prefix.
	// DefaultLabelPrefix when empty.
	LabelPrefix string

	// MaxSessions bounds the sessions opened on the token at once (at
	// least 2); 0 leaves the library's and the token's own limits.
	MaxSessions int
}

// check validates c and fills in its defaults.
func (c *Config) check() error {
	switch {
	case c.Module == "":
		return errors.New("pkcs11: the PKCS#11 module path is missing")
	case c.TokenLabel == "" && c.TokenSerial == "":
		return errors.New("pkcs11: a token label or serial number is required")
	case c.TokenLabel != "" && c.TokenSerial != "":
		return errors.New("pkcs11: give a token label or a serial number, not both")
	case c.PIN == "":
		return errors.New("pkcs11: the user PIN is missing")
	case c.MaxSessions == 1 || c.MaxSessions < 0:
		return fmt.Errorf("pkcs11: MaxSessions %d: it must be 0 or at least 2", c.MaxSessions)
	}
	if c.LabelPrefix == "" {
		c.LabelPrefix = DefaultLabelPrefix
	}
	if len(c.LabelPrefix)+ca.MaxKeyIDLen > maxLabelLen {
		return fmt.Errorf("pkcs11: label prefix %q is longer than %d bytes", c.LabelPrefix, maxLabelLen-ca.MaxKeyIDLen)
	}
	return nil
}

// maxLabelLen bounds the labels this package writes.
const maxLabelLen = 256

// validateKeyID checks id with ca.ValidateKeyID and gives the error this
// package's prefix.
func validateKeyID(id string) error {
	if err := ca.ValidateKeyID(id); err != nil {
		return fmt.Errorf("pkcs11: %w", err)
	}
	return nil
}
