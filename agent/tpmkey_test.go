package agent_test

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/ca/keymanager/tpm"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// openTPMKeys opens agent keys on the TPM at socket until the test ends,
// or until the returned function closes them.
func openTPMKeys(t testing.TB, socket string) (*tpm.AgentKeys, func()) {
	t.Helper()
	keys, err := tpm.OpenAgentKeys(tpm.AgentKeysConfig{Device: socket})
	require.NoError(t, err)
	closed := false
	closeKeys := func() {
		if !closed {
			closed = true
			require.NoError(t, keys.Close())
		}
	}
	t.Cleanup(closeKeys) // after the agents the test starts later
	return keys, closeKeys
}

// tpmAgentConfig is the configuration of an agent of s whose key the TPM
// of keys makes, keeping its state in dir.
func tpmAgentConfig(t testing.TB, s *nodetest.NodeServer, keys agent.KeyStore, dir string) agent.Config {
	cfg := s.AgentConfig(t)
	cfg.DataDir, cfg.KeyStore = dir, keys
	return cfg
}

// noKeyInClear checks that no file of dir holds, in PEM, the private key
// of pub, and that the agent's own key is not a key in memory.
func noKeyInClear(t *testing.T, dir string, a *nodetest.Agent) {
	t.Helper()
	svid := a.SVID()
	_, inMemory := svid.PrivateKey.(*ecdsa.PrivateKey)
	assert.False(t, inMemory, "the agent's key is the TPM's, %T", svid.PrivateKey)
	pub := svid.Certificates[0].PublicKey
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if strings.Contains(block.Type, "PRIVATE KEY") {
				key, err := pemutil.ParsePrivateKey(pem.EncodeToMemory(block))
				if err == nil {
					assert.False(t, samePublic(pub, key.Public()), "%s holds the agent's private key", e.Name())
				}
			}
		}
	}
	_, err = os.Stat(filepath.Join(dir, "agent-key.pem"))
	require.ErrorIs(t, err, os.ErrNotExist, "no software key file")
	blob, err := os.ReadFile(filepath.Join(dir, tpm.AgentKeyFile))
	require.NoError(t, err)
	_, err = pemutil.ParsePrivateKey(blob)
	require.Error(t, err, "the blob is no private key")
}

func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Property: an agent whose key the TPM makes attests, serves, and after a
// restart comes back with its saved SVID and the same TPM key (no node
// attestor needed), which the TPM still uses: the agent syncs and serves
// again. The key is never on disk in clear; its blob is mode 0600.
func TestTPMKeySurvivesRestart(t *testing.T) {
	sw := swtpmtest.New(t, swtpmtest.NewCA(t))
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "data")
	keys, closeKeys := openTPMKeys(t, sw.Socket)
	a := nodetest.StartAgent(t, tpmAgentConfig(t, s, keys, dir))
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	id, first := a.ID(), a.SVID().Certificates[0]
	info, err := os.Stat(filepath.Join(dir, "agent-key.tpmkey"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	noKeyInClear(t, dir, a)
	require.NoError(t, a.Stop())
	closeKeys()

	keys, _ = openTPMKeys(t, sw.Socket)
	cfg := tpmAgentConfig(t, s, keys, dir)
	cfg.NodeAttestor = nil // the join token is spent: the saved SVID must do
	again := nodetest.StartAgent(t, cfg)
	assert.Equal(t, id, again.ID())
	svid := again.SVID()
	assert.Equal(t, first.SerialNumber, svid.Certificates[0].SerialNumber, "the saved SVID")
	assert.True(t, samePublic(first.PublicKey, svid.PrivateKey.Public()), "the same TPM key")
	again.WaitSynced(t) // over TLS, with the TPM signing the handshake
	again.WaitSVID(t, web.SPIFFEID)
	require.NoError(t, again.Healthy())
	noKeyInClear(t, dir, again)
}

// Property: each renewal of the agent SVID has the TPM make a new key,
// whose blob replaces the saved one.
func TestTPMKeyRenewalMakesANewKey(t *testing.T) {
	sw := swtpmtest.New(t, swtpmtest.NewCA(t))
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: newRotation(t), Store: memstore.New(memstore.Config{}), Edit: shortTTL(4 * time.Second)})
	dir := t.TempDir()
	keys, _ := openTPMKeys(t, sw.Socket)
	a := nodetest.StartAgent(t, tpmAgentConfig(t, s, keys, dir))
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	first := a.SVID().Certificates[0]
	blob, err := os.ReadFile(filepath.Join(dir, tpm.AgentKeyFile))
	require.NoError(t, err)

	require.Eventually(t, func() bool { return a.SVID().Certificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 }, 30*time.Second, 20*time.Millisecond)
	renewed := a.SVID()
	assert.False(t, samePublic(first.PublicKey, renewed.Certificates[0].PublicKey), "a new key")
	var saved []byte
	require.Eventually(t, func() bool {
		saved, err = os.ReadFile(filepath.Join(dir, tpm.AgentKeyFile))
		return err == nil && string(saved) != string(blob)
	}, 10*time.Second, 20*time.Millisecond)
	key, err := keys.LoadKey(t.Context(), saved)
	require.NoError(t, err)
	cur := a.SVID().Certificates[0]
	assert.True(t, samePublic(cur.PublicKey, key.Public()), "the saved blob is the current SVID's key")
	a.WaitSVID(t, web.SPIFFEID)
	noKeyInClear(t, dir, a)
}

// Property: the blob of a TPM key copied with the data directory to a
// node with another TPM is refused, with an error naming the file and
// the reason: without a node attestor the agent does not start; with one,
// it attests again, with a key of its own TPM.
func TestTPMKeyFromAnotherTPMIsRefused(t *testing.T) {
	tpms := swtpmtest.NewN(t, swtpmtest.NewCA(t), swtpmtest.NewCA(t))
	s := startServer(t)
	dir := t.TempDir()
	keysA, closeA := openTPMKeys(t, tpms[0].Socket)
	a := nodetest.StartAgent(t, tpmAgentConfig(t, s, keysA, dir))
	id := a.ID()
	require.NoError(t, a.Stop())
	closeA()

	keysB, _ := openTPMKeys(t, tpms[1].Socket)
	cfg := tpmAgentConfig(t, s, keysB, dir)
	cfg.NodeAttestor = nil
	_, err := nodetest.TryAgent(t, cfg)
	require.ErrorIs(t, err, agent.ErrNoNodeAttestor)
	path := filepath.Join(dir, tpm.AgentKeyFile)
	require.ErrorContains(t, err, "agent: no node attestor, and the agent SVID saved in the data directory is not usable: agent: the saved key ("+
		path+`): tpm: loading key "agent": the TPM refuses its file (made by another TPM, or altered)`)

	logs := &logtest.Buffer{}
	cfg = tpmAgentConfig(t, s, keysB, dir)
	cfg.Logger = logs.Logger()
	b := nodetest.StartAgent(t, cfg)
	assert.NotEqual(t, id, b.ID(), "attested again, with a new join token")
	assert.True(t, logs.Contains("the TPM refuses its file"), logs.String())
	blob, err := os.ReadFile(path)
	require.NoError(t, err)
	key, err := keysB.LoadKey(t.Context(), blob)
	require.NoError(t, err, "the saved blob is now this TPM's")
	assert.True(t, samePublic(b.SVID().Certificates[0].PublicKey, key.Public()))
}

// Property: a blob file that others may read is refused before anything is
// attested, naming the file; one whose content is corrupt is refused
// saying why (never a panic); put right, the saved SVID is reused.
func TestTPMKeyFileRefusals(t *testing.T) {
	sw := swtpmtest.New(t, swtpmtest.NewCA(t))
	s := startServer(t)
	dir := t.TempDir()
	keys, _ := openTPMKeys(t, sw.Socket)
	a := nodetest.StartAgent(t, tpmAgentConfig(t, s, keys, dir))
	serial := a.SVID().Certificates[0].SerialNumber
	require.NoError(t, a.Stop())
	path := filepath.Join(dir, tpm.AgentKeyFile)
	blob, err := os.ReadFile(path)
	require.NoError(t, err)

	cfg := tpmAgentConfig(t, s, keys, dir)
	cfg.NodeAttestor = nil
	require.NoError(t, os.Chmod(path, 0o640))
	_, err = nodetest.TryAgent(t, cfg)
	require.EqualError(t, err, "agent: data directory file "+path+" has mode 0640: it holds the agent's private key, which only the agent may read (chmod 0600 "+path+")")
	require.NoError(t, os.Chmod(path, 0o600))

	flipped := append([]byte(nil), blob...)
	flipped[len(flipped)-10] ^= 0x01 // inside the private area's base64
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"garbage":   {[]byte("not a key"), `): tpm: key "agent": key file: invalid character`},
		"empty":     {nil, `): tpm: key "agent": key file: unexpected end of JSON input`},
		"truncated": {blob[:len(blob)/2], `): tpm: key "agent": key file: unexpected end of JSON input`},
		"flipped":   {flipped, `): tpm: `},
	} {
		require.NoError(t, os.WriteFile(path, c.data, 0o600), name)
		_, err = nodetest.TryAgent(t, cfg)
		require.ErrorIs(t, err, agent.ErrNoNodeAttestor, name)
		require.ErrorContains(t, err, "agent: the saved key ("+path+c.want, name)
	}

	require.NoError(t, os.WriteFile(path, blob, 0o600))
	again, err := nodetest.TryAgent(t, cfg)
	require.NoError(t, err)
	assert.Equal(t, serial, again.SVID().Certificates[0].SerialNumber)
}

// BenchmarkRenewAgentSVID measures a renewal of the agent SVID: a new key,
// the CSR it signs, the server's round trip (the server runs in the
// process), saving the SVID and key, and the new connection; with the
// default software key and with a TPM key (swtpm). Beside the wall clock,
// which the disk's syncs and the machine's load dominate, it reports the
// CPU time of a renewal, the process's and swtpm's together.
func BenchmarkRenewAgentSVID(b *testing.B) {
	for _, store := range []string{"software", "tpm"} {
		b.Run(store, func(b *testing.B) {
			s := nodetest.StartNodeServer(b, nodetest.NodeConfig{})
			cfg := s.AgentConfig(b)
			cfg.DataDir = b.TempDir()
			var sw *swtpmtest.TPM
			if store == "tpm" {
				sw = swtpmtest.New(b, swtpmtest.NewCA(b))
				cfg.KeyStore, _ = openTPMKeys(b, sw.Socket)
			}
			a := nodetest.StartAgent(b, cfg)
			b.ReportAllocs()
			start := swtpmtest.ProcessCPUTime(b, sw)
			for b.Loop() {
				if err := a.Renew(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(swtpmtest.ProcessCPUTime(b, sw)-start)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}
