package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// KeyStore makes the agent's own private key, the key of its agent SVID,
// and gives it back when the agent starts again: see Config.KeyStore.
// Package ca/keymanager/tpm's AgentKeys keeps the key in a TPM.
type KeyStore interface {
	// KeyFile names the file of Config.DataDir that keeps the key: a plain
	// file name, other than the agent's other files (agent-svid.pem,
	// bundle.json, workload-svids.bin, workload-svids.jsonl, lock). The
	// agent writes the key being saved to a file of its own first, the
	// name with ".next" before its extension ("agent-key.next.pem").
	KeyFile() string

	// GenerateKey makes a new key, for a new agent SVID, and returns it
	// with the bytes that keep it: the agent writes them to KeyFile (mode
	// 0600) with the SVID, and gives them to LoadKey when it starts again.
	GenerateKey(ctx context.Context) (crypto.Signer, []byte, error)

	// LoadKey returns the key that data, from GenerateKey, keeps. It
	// fails, saying why, on data it cannot use.
	LoadKey(ctx context.Context, data []byte) (crypto.Signer, error)
}

// softwareKeys is the default KeyStore: ECDSA P-256 keys in the agent's
// memory, kept as PKCS #8 PEM in agent-key.pem.
type softwareKeys struct{}

func (softwareKeys) KeyFile() string { return datadir.KeyFile }

func (softwareKeys) GenerateKey(context.Context) (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	data, err := pemutil.EncodePKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, data, nil
}

func (softwareKeys) LoadKey(_ context.Context, data []byte) (crypto.Signer, error) {
	return pemutil.ParsePrivateKey(data)
}

// keyFilesOf checks the KeyFile of ks and returns the names of its files.
func keyFilesOf(ks KeyStore) (datadir.KeyFiles, error) {
	name := ks.KeyFile()
	switch name {
	case datadir.SVIDFile, datadir.BundleFile, datadir.WorkloadsFile, datadir.OldWorkloadsFile, dirlock.FileName:
		return datadir.KeyFiles{}, fmt.Errorf("agent: Config.KeyStore names the data directory file %q for its key, which the agent uses for another", name)
	}
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
		return datadir.KeyFiles{}, fmt.Errorf("agent: Config.KeyStore names %q for its key file: want a plain file name", name)
	}
	ext := filepath.Ext(name)
	return datadir.KeyFiles{Key: name, Next: strings.TrimSuffix(name, ext) + ".next" + ext}, nil
}
