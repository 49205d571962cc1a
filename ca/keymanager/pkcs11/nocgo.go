//go:build !cgo

package pkcs11

import (
	"context"
	"crypto"
	"errors"

	"github.com/spiffekit/spiffekit/ca"
)

// KeyManager is a [ca.KeyManager] and [ca.KeyDestroyer] over a PKCS#11
// token. This build has no cgo, so none can be opened.
type KeyManager struct{}

var (
	_ ca.KeyManager   = (*KeyManager)(nil)
	_ ca.KeyDestroyer = (*KeyManager)(nil)
)

// errNoCgo is what every function says in a build without cgo.
var errNoCgo = errors.New("pkcs11: this program was built without cgo (CGO_ENABLED=0), which loading a PKCS#11 module needs")

// Open fails: loading a PKCS#11 module needs cgo.
func Open(cfg Config) (*KeyManager, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return nil, errNoCgo
}

// GenerateKey fails: see [Open].
func (*KeyManager) GenerateKey(context.Context, string, ca.KeyAlgorithm) (crypto.Signer, error) {
	return nil, errNoCgo
}

// Key fails: see [Open].
func (*KeyManager) Key(context.Context, string) (crypto.Signer, error) { return nil, errNoCgo }

// DestroyKey fails: see [Open].
func (*KeyManager) DestroyKey(context.Context, string) error { return errNoCgo }

// Close does nothing.
func (*KeyManager) Close() error { return nil }
