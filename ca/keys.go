package ca

import (
	"context"
	"crypto"
	"errors"
	"fmt"
)

// KeyAlgorithm names the type and size of a CA signing key.
type KeyAlgorithm string

// Key algorithms a [KeyManager] can be asked for. Every one of them can sign
// both X.509 CA certificates and JWT-SVIDs.
const (
	ECP256  KeyAlgorithm = "ec-p256"  // ECDSA on P-256 (ES256 for JWT-SVIDs)
	ECP384  KeyAlgorithm = "ec-p384"  // ECDSA on P-384 (ES384 for JWT-SVIDs)
	RSA2048 KeyAlgorithm = "rsa-2048" // RSA, 2048-bit modulus (RS256 for JWT-SVIDs)
	RSA4096 KeyAlgorithm = "rsa-4096" // RSA, 4096-bit modulus (RS256 for JWT-SVIDs)
)

// Errors a [KeyManager] returns; callers test them with errors.Is.
var (
	// ErrKeyNotFound is returned by KeyManager.Key and
	// KeyDestroyer.DestroyKey for an unknown key ID.
	ErrKeyNotFound = errors.New("ca: key not found")

	// ErrKeyExists is returned by KeyManager.GenerateKey when the key ID is
	// taken: a key that a journal may refer to is never replaced.
	ErrKeyExists = errors.New("ca: key already exists")
)

// A KeyManager creates and finds CA signing keys. Keys never leave it; callers
// get a crypto.Signer, which must be safe for concurrent use. Key IDs are the
// names a KeyManager stores keys under (not JWT kids, see [KeyID]); they pass
// [ValidateKeyID], and a KeyManager rejects any other.
//
// The rotation manager (package ca/rotation) names keys with fresh random IDs
// of the form "x509-<hex>" and "jwt-<hex>". Implementations must be safe for
// concurrent use and must have stored a key durably when GenerateKey returns,
// since a journal refers to it afterwards. Package ca/keymanager has an
// in-memory and an on-disk implementation.
type KeyManager interface {
	// GenerateKey creates and stores a new key of type alg under id. It
	// fails with ErrKeyExists when id is taken.
	GenerateKey(ctx context.Context, id string, alg KeyAlgorithm) (crypto.Signer, error)

	// Key returns the key stored under id, or an error wrapping
	// ErrKeyNotFound.
	Key(ctx context.Context, id string) (crypto.Signer, error)
}

// A KeyDestroyer is a [KeyManager] that can delete keys. When a key manager
// has this capability, the rotation manager destroys the key of an authority
// once it has left the bundle and the journal.
type KeyDestroyer interface {
	// DestroyKey deletes the key stored under id, or returns an error
	// wrapping ErrKeyNotFound.
	DestroyKey(ctx context.Context, id string) error
}

// MaxKeyIDLen bounds key IDs, which may become file names.
const MaxKeyIDLen = 128

// ValidateKeyID accepts 1 to [MaxKeyIDLen] characters from [A-Za-z0-9_.-],
// not starting with a dot, so that a key ID is always a plain file name: no
// path traversal, no hidden or temporary file.
func ValidateKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen || id[0] == '.' {
		return fmt.Errorf("ca: invalid key ID %q", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("ca: invalid key ID %q", id)
		}
	}
	return nil
}
