package provider

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
)

// KeySet is the JWKS the provider serves: the JWT authorities of the
// trust domain's bundle, encoded once per change. It is safe for
// concurrent use; reading it never blocks on a writer.
type KeySet struct {
	setUse bool
	now    func() time.Time

	mu      sync.Mutex // serializes Set
	current atomic.Pointer[jwks]
	ready   chan struct{}
}

// jwks is one encoded key set and when it last changed.
type jwks struct {
	body    []byte
	kids    []string
	modTime time.Time
}

// NewKeySet returns an empty key set; setUse puts "use": "sig" in every
// key.
func NewKeySet(setUse bool) *KeySet {
	return &KeySet{setUse: setUse, now: time.Now, ready: make(chan struct{})}
}

// Set replaces the keys with the JWT authorities of b. Nothing changes,
// not even the modification time, when the encoded set is the same.
func (k *KeySet) Set(b *jwtbundle.Bundle) error {
	raw, err := b.Marshal()
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("decoding the bundle's keys: %w", err)
	}
	kids := make([]string, 0, len(set.Keys))
	for i := range set.Keys {
		kids = append(kids, set.Keys[i].KeyID)
		if k.setUse {
			set.Keys[i].Use = "sig"
		}
	}
	body, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the JWKS: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if cur := k.current.Load(); cur != nil && string(cur.body) == string(body) {
		return nil
	}
	// Last-Modified has one-second precision: a change within the second
	// of the previous one is dated the next second, so that a client's
	// If-Modified-Since never hides it.
	mod := k.now().UTC().Truncate(time.Second)
	if cur := k.current.Load(); cur != nil && !mod.After(cur.modTime) {
		mod = cur.modTime.Add(time.Second)
	}
	k.current.Store(&jwks{body: body, kids: kids, modTime: mod})
	select {
	case <-k.ready:
	default:
		close(k.ready)
	}
	return nil
}

// KeyIDs returns the key IDs of the current set, sorted, or nil before
// the first Set.
func (k *KeySet) KeyIDs() []string {
	if cur := k.current.Load(); cur != nil {
		return append([]string(nil), cur.kids...)
	}
	return nil
}

// Ready is closed once the set holds the keys of a bundle.
func (k *KeySet) Ready() <-chan struct{} { return k.ready }

func (k *KeySet) load() *jwks { return k.current.Load() }
