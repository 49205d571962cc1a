package tpm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	tpmattest "github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
)

// DefaultDevice is the TPM opened when Config names none: the kernel's
// resource-managed TPM device.
const DefaultDevice = tpmattest.DefaultDevice

// keyExt ends the name of every key file.
const keyExt = ".tpmkey"

// maxLoaded bounds the keys kept loaded in the TPM between signatures
// (the X.509 CA's and the JWT key's), beside the SRK: a TPM without a
// resource manager has three object slots.
const maxLoaded = 2

// Config says which TPM makes the keys and where their files are kept.
type Config struct {
	// Dir is the directory of the key files, created with mode 0700 if
	// missing. Required.
	Dir string

	// Device is the TPM: a character device, or a unix socket serving raw
	// TPM commands (swtpm). Empty means DefaultDevice.
	Device string

	// Open, if set, opens the TPM instead of Device.
	Open func() (transport.TPMCloser, error)
}

// KeyManager is a [ca.KeyManager] and [ca.KeyDestroyer] whose keys are made
// and used by a TPM (see the package documentation). It holds the TPM open
// from Open to Close and sends it one command at a time; it is safe for
// concurrent use.
type KeyManager struct {
	dir string

	mu     sync.Mutex
	tpm    transport.TPMCloser // nil once closed
	srk    tpm2.NamedHandle
	keys   map[string]*signer           // keys handed out, by ID
	loaded map[*signer]tpm2.NamedHandle // keys loaded in the TPM
	order  []*signer                    // loaded keys, least recently used first
}

var (
	_ ca.KeyManager   = (*KeyManager)(nil)
	_ ca.KeyDestroyer = (*KeyManager)(nil)
)

// Open opens the TPM, creates its storage root key and the key directory.
// A directory that group or others may access is refused.
func Open(cfg Config) (*KeyManager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tpm: key directory is missing")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tpm: cannot create key directory: %w", err)
	}
	info, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("tpm: %s is not a directory", cfg.Dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("tpm: key directory %s has permissions %#o; group and others must have none", cfg.Dir, info.Mode().Perm())
	}
	return openTPM(cfg.Dir, cfg.Device, cfg.Open)
}

// openTPM opens the TPM (open, else device, else DefaultDevice) and
// creates its storage root key. dir is the key directory, empty for
// [AgentKeys], which keep no files.
func openTPM(dir, device string, open func() (transport.TPMCloser, error)) (*KeyManager, error) {
	if open == nil {
		if device == "" {
			device = DefaultDevice
		}
		open = func() (transport.TPMCloser, error) { return tpmattest.OpenDevice(device) }
	}
	t, err := open()
	if err != nil {
		return nil, err // OpenDevice says "tpm: "
	}
	r, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("tpm: creating the storage root key (the owner hierarchy must have an empty authorization): %w", err)
	}
	return &KeyManager{
		dir:    dir,
		tpm:    t,
		srk:    tpm2.NamedHandle{Handle: r.ObjectHandle, Name: r.Name},
		keys:   make(map[string]*signer),
		loaded: make(map[*signer]tpm2.NamedHandle),
	}, nil
}

// Close unloads the keys and the SRK from the TPM and closes it, after the
// signature under way. Signers handed out fail afterwards.
func (k *KeyManager) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil
	}
	for s := range k.loaded {
		k.unload(s)
	}
	tpm2.FlushContext{FlushHandle: k.srk.Handle}.Execute(k.tpm)
	err := k.tpm.Close()
	k.tpm = nil
	if err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	return nil
}

func (k *KeyManager) path(id string) string { return filepath.Join(k.dir, id+keyExt) }

// templates are the public areas of new keys: signing keys of the TPM,
// with no scheme of their own (the signature's hash and padding are
// chosen at each signature).
func template(alg ca.KeyAlgorithm) (tpm2.TPMTPublic, error) {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		SignEncrypt:         true,
	}
	ecc := func(curve tpm2.TPMECCCurve) tpm2.TPMTPublic {
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				CurveID: curve,
				Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			}),
		}
	}
	rsaKey := func(bits tpm2.TPMKeyBits) tpm2.TPMTPublic {
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				KeyBits: bits,
				Scheme:  tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			}),
		}
	}
	switch alg {
	case ca.ECP256:
		return ecc(tpm2.TPMECCNistP256), nil
	case ca.ECP384:
		return ecc(tpm2.TPMECCNistP384), nil
	case ca.RSA2048:
		return rsaKey(2048), nil
	case ca.RSA4096:
		return rsaKey(4096), nil
	}
	return tpm2.TPMTPublic{}, fmt.Errorf("tpm: unsupported key algorithm %q", alg)
}

// GenerateKey has the TPM create a key of type alg under its SRK, and
// writes the key's file durably before returning it.
func (k *KeyManager) GenerateKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	if err := k.check(ctx, id); err != nil {
		return nil, err
	}
	tmpl, err := template(alg)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil, errClosed
	}
	if _, err := os.Lstat(k.path(id)); err == nil {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyExists, id)
	}
	s, data, err := k.create(id, alg, tmpl)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(k.path(id), data, 0o600); err != nil {
		return nil, fmt.Errorf("tpm: cannot store key %q: %w", id, err)
	}
	k.keys[id] = s
	return s, nil
}

// create has the TPM create a key of public area tmpl under its SRK, and
// returns it with its key file's content. k.mu is held and k is open.
func (k *KeyManager) create(id string, alg ca.KeyAlgorithm, tmpl tpm2.TPMTPublic) (*signer, []byte, error) {
	// Create needs an object slot of its own: a TPM without a resource
	// manager has three, the SRK's and those of the loaded keys.
	if len(k.order) >= maxLoaded {
		k.unload(k.order[0])
	}
	r, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: k.srk.Handle, Name: k.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(tmpl),
	}.Execute(k.tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: creating key %q (%s) in the TPM: %w", id, alg, err)
	}
	data, err := encodeBlob(r.OutPublic, r.OutPrivate)
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: encoding key %q: %w", id, err)
	}
	b, err := parseBlob(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: key %q the TPM created: %w", id, err)
	}
	s, err := newSigner(k, id, b)
	if err != nil {
		return nil, nil, err
	}
	return s, data, nil
}

// Key returns the key stored under id, reading its file and loading it in
// the TPM on first use: a file made by another TPM fails here.
func (k *KeyManager) Key(ctx context.Context, id string) (crypto.Signer, error) {
	if err := k.check(ctx, id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil, errClosed
	}
	if s, ok := k.keys[id]; ok {
		return s, nil
	}
	data, err := atomicfile.ReadPrivate(k.path(id), maxBlobSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (no file %s)", ca.ErrKeyNotFound, id, k.path(id))
	}
	if err != nil {
		return nil, fmt.Errorf("tpm: cannot read key %q: %w", id, err)
	}
	s, err := k.loadBlob(id, data)
	if err != nil {
		return nil, err
	}
	k.keys[id] = s
	return s, nil
}

// loadBlob returns the key of the key file content data, loaded in the
// TPM. k.mu is held and k is open.
func (k *KeyManager) loadBlob(id string, data []byte) (*signer, error) {
	b, err := parseBlob(data)
	if err != nil {
		return nil, fmt.Errorf("tpm: key %q: %w", id, err)
	}
	s, err := newSigner(k, id, b)
	if err != nil {
		return nil, err
	}
	// Loading proves the file is this TPM's, under this SRK.
	if _, err := k.load(s); err != nil {
		return nil, err
	}
	return s, nil
}

// DestroyKey removes the file of the key stored under id and unloads the
// key from the TPM. Without its file, the TPM can no longer use the key.
func (k *KeyManager) DestroyKey(ctx context.Context, id string) error {
	if err := k.check(ctx, id); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return errClosed
	}
	if s, ok := k.keys[id]; ok {
		k.unload(s)
		s.destroyed = true
		delete(k.keys, id)
	}
	err := os.Remove(k.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("tpm: cannot destroy key %q: %w", id, err)
	}
	if err := atomicfile.SyncDir(k.dir); err != nil {
		return fmt.Errorf("tpm: cannot destroy key %q: %w", id, err)
	}
	return nil
}

var errClosed = errors.New("tpm: the key manager is closed")

// check refuses a done ctx and an invalid key ID.
func (k *KeyManager) check(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	if err := ca.ValidateKeyID(id); err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	return nil
}

// load returns the handle of s in the TPM, loading it (and unloading the
// least recently used key if maxLoaded are). k.mu is held.
func (k *KeyManager) load(s *signer) (tpm2.NamedHandle, error) {
	if h, ok := k.loaded[s]; ok {
		k.touch(s)
		return h, nil
	}
	if len(k.order) >= maxLoaded {
		k.unload(k.order[0])
	}
	r, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: k.srk.Handle, Name: k.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    s.blob.private,
		InPublic:     s.blob.public,
	}.Execute(k.tpm)
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("tpm: loading key %q: the TPM refuses its file (made by another TPM, or altered): %w", s.id, err)
	}
	h := tpm2.NamedHandle{Handle: r.ObjectHandle, Name: r.Name}
	k.loaded[s] = h
	k.order = append(k.order, s)
	return h, nil
}

// touch makes s the most recently used loaded key.
func (k *KeyManager) touch(s *signer) {
	for i, o := range k.order {
		if o == s {
			k.order = append(append(k.order[:i:i], k.order[i+1:]...), s)
			return
		}
	}
}

// unload flushes s from the TPM if it is loaded.
func (k *KeyManager) unload(s *signer) {
	h, ok := k.loaded[s]
	if !ok {
		return
	}
	tpm2.FlushContext{FlushHandle: h.Handle}.Execute(k.tpm)
	delete(k.loaded, s)
	for i, o := range k.order {
		if o == s {
			k.order = append(k.order[:i:i], k.order[i+1:]...)
			break
		}
	}
}

// signer is a crypto.Signer whose private key is in the TPM.
type signer struct {
	km        *KeyManager
	id        string
	blob      *blob
	public    crypto.PublicKey
	destroyed bool // guarded by km.mu
}

func newSigner(k *KeyManager, id string, b *blob) (*signer, error) {
	pub, err := tpm2.Pub(*b.pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: key %q: %w", id, err)
	}
	return &signer{km: k, id: id, blob: b, public: pub}, nil
}

// Public returns the key's public key.
func (s *signer) Public() crypto.PublicKey { return s.public }

// Sign has the TPM sign digest, which opts.HashFunc() made: ECDSA (the
// signature in ASN.1 DER), RSA PKCS #1 v1.5, or RSA-PSS with a salt as
// long as the hash.
func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	hashAlg, err := hashOf(opts, len(digest))
	if err != nil {
		return nil, fmt.Errorf("tpm: key %q: %w", s.id, err)
	}
	scheme := tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA}
	switch s.public.(type) {
	case *rsa.PublicKey:
		scheme.Scheme = tpm2.TPMAlgRSASSA
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != opts.HashFunc().Size() {
				return nil, fmt.Errorf("tpm: key %q: RSA-PSS with a salt of other length than the hash", s.id)
			}
			scheme.Scheme = tpm2.TPMAlgRSAPSS
		}
	}
	scheme.Details = tpm2.NewTPMUSigScheme(scheme.Scheme, &tpm2.TPMSSchemeHash{HashAlg: hashAlg})

	k := s.km
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.tpm == nil:
		return nil, errClosed
	case s.destroyed:
		return nil, fmt.Errorf("tpm: key %q was destroyed", s.id)
	}
	h, err := k.load(s)
	if err != nil {
		return nil, err
	}
	r, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: tpm2.PasswordAuth(nil)},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   scheme,
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.tpm)
	if err != nil {
		return nil, fmt.Errorf("tpm: signing with key %q: %w", s.id, err)
	}
	return encodeSignature(r.Signature)
}

// hashOf maps the hash of opts to the TPM's, checking the digest's size.
func hashOf(opts crypto.SignerOpts, size int) (tpm2.TPMIAlgHash, error) {
	h := opts.HashFunc()
	var alg tpm2.TPMIAlgHash
	switch h {
	case crypto.SHA256:
		alg = tpm2.TPMAlgSHA256
	case crypto.SHA384:
		alg = tpm2.TPMAlgSHA384
	case crypto.SHA512:
		alg = tpm2.TPMAlgSHA512
	default:
		return 0, fmt.Errorf("unsupported hash %v (SHA-256, SHA-384 or SHA-512)", h)
	}
	if size != h.Size() {
		return 0, fmt.Errorf("a digest of %d bytes for %v", size, h)
	}
	return alg, nil
}

// encodeSignature turns a TPM signature into the form crypto.Signer
// returns.
func encodeSignature(sig tpm2.TPMTSignature) ([]byte, error) {
	switch sig.SigAlg {
	case tpm2.TPMAlgECDSA:
		e, err := sig.Signature.ECDSA()
		if err != nil {
			return nil, fmt.Errorf("tpm: signature: %w", err)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(e.SignatureR.Buffer),
			new(big.Int).SetBytes(e.SignatureS.Buffer),
		})
	case tpm2.TPMAlgRSASSA:
		r, err := sig.Signature.RSASSA()
		if err != nil {
			return nil, fmt.Errorf("tpm: signature: %w", err)
		}
		return r.Sig.Buffer, nil
	case tpm2.TPMAlgRSAPSS:
		r, err := sig.Signature.RSAPSS()
		if err != nil {
			return nil, fmt.Errorf("tpm: signature: %w", err)
		}
		return r.Sig.Buffer, nil
	}
	return nil, fmt.Errorf("tpm: signature of algorithm %#x", uint16(sig.SigAlg))
}
