package keyset

import (
	"crypto"
	"errors"
	"maps"
	"sync"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
)

// Set is a set of public keys by key ID. It is safe for concurrent use and its
// zero value is an empty set ready to use. A Set must not be copied after first
// use.
type Set struct {
	mu   sync.RWMutex
	keys map[string]crypto.PublicKey
}

// Check reports whether key may be added under keyID: the key ID must not be
// empty (Bundle rule 16, WIT rule 16), and the key must be a non-nil public
// key, never a private one (Bundle rule 14).
func Check(keyID string, key crypto.PublicKey) error {
	if keyID == "" {
		return errors.New("keyID cannot be empty")
	}
	return jwkutil.CheckPublicKey(key)
}

// Find returns the key with the given key ID and true, or nil and false when
// the set has none.
func (s *Set) Find(keyID string) (crypto.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.keys[keyID]
	return key, ok
}

// Has reports whether the set has a key with the given key ID.
func (s *Set) Has(keyID string) bool {
	_, ok := s.Find(keyID)
	return ok
}

// Add adds key under keyID, replacing any key already there. It returns the
// error of [Check] and leaves the set unchanged when the key is refused.
func (s *Set) Add(keyID string, key crypto.PublicKey) error {
	if err := Check(keyID, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]crypto.PublicKey)
	}
	s.keys[keyID] = key
	return nil
}

// Remove removes the key with the given key ID, if any.
func (s *Set) Remove(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, keyID)
}

// Replace replaces every key with those of a copy of keys. Like go-spiffe's
// setters it does not validate them; [Set.Marshal] refuses entries that are
// not public keys.
func (s *Set) Replace(keys map[string]crypto.PublicKey) {
	c := make(map[string]crypto.PublicKey, len(keys))
	maps.Copy(c, keys)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = c
}

// All returns a copy of the keys, never nil.
func (s *Set) All() map[string]crypto.PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := make(map[string]crypto.PublicKey, len(s.keys))
	maps.Copy(c, s.keys)
	return c
}

// Len returns the number of keys in the set.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// Equal reports whether both sets map the same key IDs to equal public keys,
// compared with the keys' Equal methods; a key without one equals nothing.
// The two sets are never locked at the same time.
func (s *Set) Equal(other *Set) bool {
	if s == other {
		return true
	}
	mine := s.All()
	other.mu.RLock()
	defer other.mu.RUnlock()
	return jwkutil.KeysEqual(mine, other.keys)
}

// Marshal encodes the keys as a plain RFC 7517 JWK Set, sorted by key ID,
// without "use" or any SPIFFE-specific member. It fails if a key is not a
// public key that go-jose can encode.
func (s *Set) Marshal() ([]byte, error) {
	return jwkutil.MarshalAuthorities(s.All())
}
