package keymanager

import (
	"context"
	"crypto"
	"fmt"
	"sync"

	"github.com/spiffekit/spiffekit/ca"
)

// Memory is a [ca.KeyManager] and [ca.KeyDestroyer] that keeps keys in
// memory only: they are lost when the process exits, so a rotating CA using
// it cannot be restarted from its journal. Use it in tests and for
// short-lived trust domains. The zero value is ready to use; it is safe for
// concurrent use.
type Memory struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer
}

var (
	_ ca.KeyManager   = (*Memory)(nil)
	_ ca.KeyDestroyer = (*Memory)(nil)
)

// NewMemory returns an empty in-memory key manager.
func NewMemory() *Memory { return new(Memory) }

// GenerateKey creates a key of type alg and keeps it under id.
func (k *Memory) GenerateKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	key, err := newKey(ctx, id, alg)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[id]; ok {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyExists, id)
	}
	if k.keys == nil {
		k.keys = make(map[string]crypto.Signer)
	}
	k.keys[id] = key
	return key, nil
}

// Key returns the key kept under id.
func (k *Memory) Key(ctx context.Context, id string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	return key, nil
}

// DestroyKey forgets the key kept under id.
func (k *Memory) DestroyKey(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keymanager: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[id]; !ok {
		return fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	delete(k.keys, id)
	return nil
}
