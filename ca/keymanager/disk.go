package keymanager

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// maxKeyFileSize bounds a key file; a PKCS#8 RSA-4096 key in PEM is about 3.3 KB.
const maxKeyFileSize = 64 << 10

// Disk is a [ca.KeyManager] and [ca.KeyDestroyer] that keeps each key in its
// own file, "<dir>/<id>.key", as a PKCS#8 PEM "PRIVATE KEY" block with mode
// 0600, in a directory with mode 0700. Files are written atomically
// (temporary file, fsync, rename, fsync of the directory), so a crash never
// leaves a partial key. A key file that group or others may read or write is
// refused.
//
// Loaded keys are cached in memory. Disk is safe for concurrent use; two
// processes must not share a directory.
type Disk struct {
	dir string

	mu    sync.Mutex
	cache map[string]crypto.Signer
}

var (
	_ ca.KeyManager   = (*Disk)(nil)
	_ ca.KeyDestroyer = (*Disk)(nil)
)

// NewDisk returns a key manager storing keys in dir, which is created with
// mode 0700 if missing. An existing dir that group or others may access is
// refused.
func NewDisk(dir string) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("keymanager: key directory is missing")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keymanager: cannot create key directory: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("keymanager: %s is not a directory", dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keymanager: key directory %s has permissions %#o; group and others must have none", dir, info.Mode().Perm())
	}
	return &Disk{dir: dir, cache: make(map[string]crypto.Signer)}, nil
}

func (k *Disk) path(id string) string { return filepath.Join(k.dir, id+".key") }

// GenerateKey creates a key of type alg and writes it durably to its file
// before returning it.
func (k *Disk) GenerateKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	key, err := newKey(ctx, id, alg)
	if err != nil {
		return nil, err
	}
	data, err := pemutil.EncodePKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keymanager: cannot encode key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := os.Lstat(k.path(id)); err == nil {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyExists, id)
	}
	if err := atomicfile.Write(k.path(id), data, 0o600); err != nil {
		return nil, fmt.Errorf("keymanager: cannot store key %q: %w", id, err)
	}
	k.cache[id] = key
	return key, nil
}

// Key returns the key stored under id, reading its file on first use.
func (k *Disk) Key(ctx context.Context, id string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[id]; ok {
		return key, nil
	}
	data, err := atomicfile.ReadPrivate(k.path(id), maxKeyFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("keymanager: cannot read key %q: %w", id, err)
	}
	key, err := pemutil.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("keymanager: cannot parse key %q: %w", id, err)
	}
	k.cache[id] = key
	return key, nil
}

// DestroyKey removes the file of the key stored under id.
func (k *Disk) DestroyKey(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keymanager: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, id)
	err := os.Remove(k.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %q", ca.ErrKeyNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("keymanager: cannot destroy key %q: %w", id, err)
	}
	if err := atomicfile.SyncDir(k.dir); err != nil {
		return fmt.Errorf("keymanager: cannot destroy key %q: %w", id, err)
	}
	return nil
}
