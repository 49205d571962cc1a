package agent_test

import (
	"context"
	"crypto"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

// keyStore is a KeyStore whose key file is named file and whose keys
// cannot be made.
type keyStore struct{ file string }

func (k keyStore) KeyFile() string { return k.file }

func (keyStore) GenerateKey(context.Context) (crypto.Signer, []byte, error) {
	return nil, nil, errors.New("the key store is out of order")
}

func (keyStore) LoadKey(context.Context, []byte) (crypto.Signer, error) {
	return nil, errors.New("the key store is out of order")
}

// Property: a KeyStore that would have its key kept over another file of
// the data directory, or outside it, is refused by New, saying so.
func TestKeyStoreFileRefused(t *testing.T) {
	s := startServer(t)
	for file, want := range map[string]string{
		"agent-svid.pem":       `agent: Config.KeyStore names the data directory file "agent-svid.pem" for its key, which the agent uses for another`,
		"bundle.json":          `agent: Config.KeyStore names the data directory file "bundle.json" for its key, which the agent uses for another`,
		"workload-svids.bin":   `agent: Config.KeyStore names the data directory file "workload-svids.bin" for its key, which the agent uses for another`,
		"workload-svids.jsonl": `agent: Config.KeyStore names the data directory file "workload-svids.jsonl" for its key, which the agent uses for another`,
		"lock":                 `agent: Config.KeyStore names the data directory file "lock" for its key, which the agent uses for another`,
		"":                     `agent: Config.KeyStore names "" for its key file: want a plain file name`,
		"../key":               `agent: Config.KeyStore names "../key" for its key file: want a plain file name`,
		"/etc/key":             `agent: Config.KeyStore names "/etc/key" for its key file: want a plain file name`,
		".key":                 `agent: Config.KeyStore names ".key" for its key file: want a plain file name`,
		`a\b`:                  `agent: Config.KeyStore names "a\\b" for its key file: want a plain file name`,
	} {
		cfg := s.AgentConfig(t)
		cfg.DataDir, cfg.KeyStore = t.TempDir(), keyStore{file}
		_, err := nodetest.TryAgent(t, cfg)
		require.EqualError(t, err, want, file)
	}
}

// Property: an agent whose KeyStore cannot make a key does not attest, and
// Run says why.
func TestKeyStoreFailureStopsAttestation(t *testing.T) {
	s := startServer(t)
	cfg := s.AgentConfig(t)
	cfg.KeyStore = keyStore{"agent-key.test"}
	_, err := nodetest.TryAgent(t, cfg)
	require.EqualError(t, err, "agent: generating the agent key: the key store is out of order")
}

var _ agent.KeyStore = keyStore{}
