//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"fmt"
	"sync"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"

	"github.com/spiffekit/spiffekit/ca"
)

// KeyManager is a [ca.KeyManager] and [ca.KeyDestroyer] over a PKCS#11
// token: keys are generated and kept in the token, and the signers it
// hands out ask the token for each signature. Loaded keys are cached.
// KeyManager is safe for concurrent use; Close it when done.
type KeyManager struct {
	tok    *crypto11.Context
	prefix string

	mu    sync.Mutex // orders GenerateKey's check-then-create and DestroyKey
	cache map[string]crypto11.Signer
}

var (
	_ ca.KeyManager   = (*KeyManager)(nil)
	_ ca.KeyDestroyer = (*KeyManager)(nil)
)

// Open loads cfg.Module, finds the token and logs in to it. A wrong PIN,
// an unknown token or a module that does not load fail here.
func Open(cfg Config) (*KeyManager, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tok, err := crypto11.Configure(&crypto11.Config{
		Path:        cfg.Module,
		TokenLabel:  cfg.TokenLabel,
		TokenSerial: cfg.TokenSerial,
		Pin:         cfg.PIN,
		MaxSessions: cfg.MaxSessions,
	})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening token %s of %s: %w", tokenName(cfg), cfg.Module, err)
	}
	return &KeyManager{tok: tok, prefix: cfg.LabelPrefix, cache: make(map[string]crypto11.Signer)}, nil
}

func tokenName(cfg Config) string {
	if cfg.TokenLabel != "" {
		return fmt.Sprintf("labelled %q", cfg.TokenLabel)
	}
	return fmt.Sprintf("with serial number %q", cfg.TokenSerial)
}

// Close logs out and releases the token, once the signatures under way
// are made. Signers handed out fail afterwards.
func (k *KeyManager) Close() error {
	if err := k.tok.Close(); err != nil {
		return fmt.Errorf("pkcs11: %w", err)
	}
	return nil
}

// label is the CKA_LABEL and CKA_ID of the key stored under id.
func (k *KeyManager) label(id string) []byte { return []byte(k.prefix + id) }

// GenerateKey creates a key of type alg in the token, as a token object
// that is private, sensitive and not extractable, labelled with the
// prefix and id.
func (k *KeyManager) GenerateKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	found, err := k.find(id)
	if err != nil {
		return nil, err
	}
	if found != nil {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyExists, id)
	}
	public, err := crypto11.NewAttributeSetWithIDAndLabel(k.label(id), k.label(id))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	private := public.Copy()
	private.AddIfNotPresent([]*p11.Attribute{
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
	})
	var key crypto11.Signer
	switch alg {
	case ca.ECP256:
		key, err = k.tok.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
	case ca.ECP384:
		key, err = k.tok.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P384())
	case ca.RSA2048:
		key, err = k.tok.GenerateRSAKeyPairWithAttributes(public, private, 2048)
	case ca.RSA4096:
		key, err = k.tok.GenerateRSAKeyPairWithAttributes(public, private, 4096)
	default:
		return nil, fmt.Errorf("pkcs11: unsupported key algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generating key %q in the token: %w", id, err)
	}
	k.cache[id] = key
	return key, nil
}

// Key returns the key stored under id, finding it in the token on first
// use. A key that could leave the token is refused.
func (k *KeyManager) Key(ctx context.Context, id string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[id]; ok {
		return key, nil
	}
	key, err := k.find(id)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%w: %q is not in the token (label %q)", ca.ErrKeyNotFound, id, k.label(id))
	}
	if err := k.checkBound(id, key); err != nil {
		return nil, err
	}
	k.cache[id] = key
	return key, nil
}

// find returns the key pair labelled for id, nil if there is none, or an
// error if there are several.
func (k *KeyManager) find(id string) (crypto11.Signer, error) {
	keys, err := k.tok.FindKeyPairs(k.label(id), k.label(id))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: looking for key %q in the token: %w", id, err)
	}
	switch len(keys) {
	case 0:
		return nil, nil
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("pkcs11: the token holds %d keys labelled %q; refusing to choose", len(keys), k.label(id))
}

// checkBound refuses a key whose private half may leave the token.
func (k *KeyManager) checkBound(id string, key crypto11.Signer) error {
	attrs, err := k.tok.GetAttributes(key, []crypto11.AttributeType{p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE})
	if err != nil {
		return fmt.Errorf("pkcs11: reading the attributes of key %q: %w", id, err)
	}
	if !boolAttr(attrs[p11.CKA_SENSITIVE]) || boolAttr(attrs[p11.CKA_EXTRACTABLE]) {
		return fmt.Errorf("pkcs11: key %q can leave the token (it is not sensitive, or extractable); refusing to use it as a CA key", id)
	}
	return nil
}

// boolAttr reads a CK_BBOOL attribute; a missing one is false.
func boolAttr(a *crypto11.Attribute) bool {
	return a != nil && len(a.Value) == 1 && a.Value[0] != 0
}

// DestroyKey deletes the key pair stored under id from the token.
func (k *KeyManager) DestroyKey(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pkcs11: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, id)
	key, err := k.find(id)
	if err != nil {
		return err
	}
	if key == nil {
		return fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	if err := key.Delete(); err != nil {
		return fmt.Errorf("pkcs11: destroying key %q: %w", id, err)
	}
	return nil
}
