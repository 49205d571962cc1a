package saved

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/agent/internal/replica"
	"github.com/spiffekit/spiffekit/agent/internal/trust"
	"github.com/spiffekit/spiffekit/agent/internal/workloadfile"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/testing/workloadsv1test"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	agentID = spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/1")
)

// noSigner signs nothing: the tests restore and save SVIDs, and mint none.
type noSigner struct{}

func (noSigner) SignX509SVIDs(context.Context, []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	return nil, errors.New("no signer")
}

func (noSigner) SignJWTSVID(context.Context, issuer.JWTSVIDRequest) (string, error) {
	return "", errors.New("no signer")
}

// noAttestor attests nobody: no workload calls.
type noAttestor struct{}

func (noAttestor) Attest(context.Context, attest.Workload) (attest.Selectors, error) {
	return attest.Selectors{}, errors.New("no workload")
}

// agentParts are the parts of an agent whose workloads are saved in dir:
// its trust, replica and issuer, and the Workloads over them.
type agentParts struct {
	dir     string
	ca      *testca.CA
	trust   *trust.State
	entries *replica.Entries
	iss     *issuer.Issuer
	logs    *logtest.Buffer
	w       *Workloads
}

func newAgentParts(t *testing.T, dir string, ca *testca.CA, edit func(*Config)) *agentParts {
	t.Helper()
	p := &agentParts{dir: dir, ca: ca, trust: trust.New(spiffebundle.FromX509Bundle(ca.X509Bundle())),
		entries: replica.New(), logs: &logtest.Buffer{}}
	var err error
	p.iss, err = issuer.New(t.Context(), issuer.Config{Trust: p.trust, Signer: noSigner{}, Registry: p.entries,
		Attestor: noAttestor{}, Federation: p.trust, Logger: p.logs.Logger()})
	require.NoError(t, err)
	t.Cleanup(func() { p.iss.Close() })
	cfg := Config{Dir: dir, TrustDomain: td, Issuer: p.iss, Trust: p.trust, Entries: p.entries,
		ID: func() spiffeid.ID { return agentID }, Logger: p.logs.Logger(), SaveInterval: 10 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	p.w = New(cfg)
	return p
}

// workloads returns n entries of the agent, each with an SVID of ca.
func workloads(t *testing.T, ca *testca.CA, n int) ([]registry.Entry, []issuer.SavedX509SVID) {
	t.Helper()
	var entries []registry.Entry
	var svids []issuer.SavedX509SVID
	for k := range n {
		e := registry.Entry{ID: fmt.Sprintf("%032x", k+1), SPIFFEID: spiffeid.RequireFromPath(td, fmt.Sprintf("/w/%d", k)),
			ParentID: agentID, Selectors: []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", k)}}, Revision: 1}
		entries = append(entries, e)
		chain, key := ca.NewLeaf(t, e.SPIFFEID)
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		svids = append(svids, issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision,
			Certificates: [][]byte{chain[0].Raw, ca.Cert().Raw}, PrivateKey: pkcs8,
			NotBefore: chain[0].NotBefore, NotAfter: chain[0].NotAfter, MintedAt: time.Now()})
	}
	return entries, svids
}

// replicate gives p's agent entries, as a sync does.
func (p *agentParts) replicate(t *testing.T, entries []registry.Entry) {
	t.Helper()
	require.NoError(t, p.entries.Replicate(t.Context(), entries, nil))
	require.NoError(t, p.iss.Sync(t.Context()))
}

// run runs p's save loop from what the file holds now until the test
// ends; stop ends it at once and waits for it.
func (p *agentParts) run(t *testing.T) (stop func()) {
	t.Helper()
	// Not t.Context(), which ends before the cleanups run: the loop's
	// last save must be over before the test's directory is removed.
	ctx, cancel := context.WithCancel(context.Background())
	last := p.w.State()
	done := make(chan error, 1)
	go func() { done <- p.w.Run(ctx, last) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			assert.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

// Restore serves what the file holds: its entries, and the SVIDs of
// them; the trust gets its federated bundles and taints.
func TestRestore(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, td)
	entries, svids := workloads(t, ca, 3)
	fed := spiffebundle.FromX509Bundle(testca.New(t, spiffeid.RequireTrustDomainFromString("other.test")).X509Bundle())
	_, err := workloadfile.Save(dir, td, &workloadfile.Contents{Agent: agentID, Entries: entries, SVIDs: svids,
		Federated: []*spiffebundle.Bundle{fed}, Taints: workloadfile.Taints{JWT: []string{"j1"}}})
	require.NoError(t, err)

	p := newAgentParts(t, dir, ca, func(c *Config) { c.WITSVIDs = true })
	require.True(t, p.w.Restore(t.Context(), agentID))
	assert.Equal(t, 3, p.entries.Len())
	got, _ := p.iss.X509SVIDs()
	assert.Len(t, got, 3)
	assert.Equal(t, []*spiffebundle.Bundle{fed}, p.trust.FederatedBundles())
	assert.Equal(t, []string{"j1"}, p.trust.TaintedJWTKeyIDs())
	assert.True(t, p.logs.Contains(`msg="serving the saved workload SVIDs until the agent syncs with a server" entries=3 svids=3 expired=0 stale=0 wit_svids=0`), "%s", p.logs)
}

// A file the agent cannot trust, or another agent's, is not restored:
// the agent starts as if it had saved nothing.
func TestRestoreRefuses(t *testing.T) {
	ca := testca.New(t, td)
	entries, svids := workloads(t, ca, 2)
	undated := append([]issuer.SavedX509SVID(nil), svids...)
	undated[1].NotBefore = time.Time{}
	good := func(t *testing.T, dir string) {
		_, err := workloadfile.Save(dir, td, &workloadfile.Contents{Agent: agentID, Entries: entries, SVIDs: svids})
		require.NoError(t, err)
	}
	tests := []struct {
		name     string
		write    func(t *testing.T, dir string)
		canceled bool
		want     string
	}{
		{"no file", func(*testing.T, string) {}, false, ""},
		{"read past its time", good, true, "context canceled"},
		{"another agent's", func(t *testing.T, dir string) {
			_, err := workloadfile.Save(dir, td, &workloadfile.Contents{Agent: spiffeid.RequireFromPath(td, "/other"), Entries: entries, SVIDs: svids})
			require.NoError(t, err)
		}, false, `msg="ignoring the saved workload SVIDs: they were saved by another agent" saved_by=spiffe://example.org/other`},
		{"damaged", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, datadir.WorkloadsFile), []byte("{}\n"), 0o600))
		}, false, `level=ERROR msg="refusing the saved workload SVIDs; starting without them"`},
		{"an SVID without its dates", func(t *testing.T, dir string) {
			_, err := workloadfile.Save(dir, td, &workloadfile.Contents{Agent: agentID, Entries: entries, SVIDs: undated,
				Taints: workloadfile.Taints{JWT: []string{"j1"}}})
			require.NoError(t, err)
		}, false, "it lacks a certificate, its key or its dates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.write(t, dir)
			p := newAgentParts(t, dir, ca, nil)
			ctx := t.Context()
			if tt.canceled {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			assert.False(t, p.w.Restore(ctx, agentID))
			assert.Zero(t, p.entries.Len(), "nothing restored, or all of it forgotten")
			assert.Empty(t, p.iss.Entries())
			assert.Empty(t, p.trust.TaintedJWTKeyIDs())
			if tt.want != "" {
				assert.True(t, p.logs.Contains(tt.want), "%s", p.logs)
			}
		})
	}
}

// A file of version 1 is restored, and replaced by one of the current
// version at once.
func TestRestoreUpgradesVersion1(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, td)
	entries, svids := workloads(t, ca, 2)
	entries = append(entries, registry.Entry{ID: fmt.Sprintf("%032x", 99), SPIFFEID: spiffeid.RequireFromPath(td, "/bad"),
		ParentID: agentID, Revision: 1}) // no selectors: left out
	var b bytes.Buffer
	workloadsv1test.Write(t, &b, td, agentID, entries, svids, nil, true)
	require.NoError(t, os.WriteFile(filepath.Join(dir, datadir.OldWorkloadsFile), b.Bytes(), 0o600))

	p := newAgentParts(t, dir, ca, nil)
	require.True(t, p.w.Restore(t.Context(), agentID))
	assert.Equal(t, 2, p.entries.Len())
	assert.True(t, p.logs.Contains(`msg="left out what does not check out in the saved workload SVIDs of version 1" left_out=1`), "%s", p.logs)
	assert.True(t, p.logs.Contains(`msg="replaced the saved workload SVIDs of version 1 with a file of the current version" entries=2 svids=2`), "%s", p.logs)
	assert.NoFileExists(t, filepath.Join(dir, datadir.OldWorkloadsFile))
	c, err := workloadfile.Load(dir, td)
	require.NoError(t, err)
	assert.Len(t, c.Entries, 2)
	assert.Len(t, c.SVIDs, 2)
}

// Run saves what the agent holds once it has changed, and once more when
// it ends; a change of the taints at once, however far the next look.
func TestRunSaves(t *testing.T) {
	ca := testca.New(t, td)
	entries, _ := workloads(t, ca, 3)
	load := func(dir string) *workloadfile.Contents {
		c, err := workloadfile.Load(dir, td)
		if err != nil {
			return nil
		}
		return c
	}

	t.Run("after a change", func(t *testing.T) {
		p := newAgentParts(t, t.TempDir(), ca, func(c *Config) { c.ReleaseAfterSave = 1 })
		p.run(t)
		p.replicate(t, entries[:2])
		require.Eventually(t, func() bool { c := load(p.dir); return c != nil && len(c.Entries) == 2 },
			10*time.Second, 10*time.Millisecond)
		p.replicate(t, entries[2:])
		require.Eventually(t, func() bool { c := load(p.dir); return c != nil && len(c.Entries) == 3 },
			10*time.Second, 10*time.Millisecond)
		c := load(p.dir)
		assert.Equal(t, agentID, c.Agent)
	})

	t.Run("a change of the taints at once", func(t *testing.T) {
		p := newAgentParts(t, t.TempDir(), ca, func(c *Config) { c.SaveInterval = time.Hour })
		p.run(t)
		p.trust.SetTaintedKeys([]string{"j1"}, nil)
		p.trust.Set(nil, false, nil, nil, nil)
		require.Eventually(t, func() bool { c := load(p.dir); return c != nil && len(c.Taints.JWT) == 1 },
			10*time.Second, 10*time.Millisecond)
	})

	t.Run("when it ends", func(t *testing.T) {
		p := newAgentParts(t, t.TempDir(), ca, func(c *Config) { c.SaveInterval = time.Hour })
		stop := p.run(t)
		p.replicate(t, entries)
		assert.NoFileExists(t, filepath.Join(p.dir, datadir.WorkloadsFile), "not before the next look")
		stop()
		c := load(p.dir)
		require.NotNil(t, c)
		assert.Len(t, c.Entries, 3)
	})

	t.Run("nothing without an agent ID", func(t *testing.T) {
		p := newAgentParts(t, t.TempDir(), ca, func(c *Config) { c.ID = func() spiffeid.ID { return spiffeid.ID{} } })
		stop := p.run(t)
		p.replicate(t, entries)
		stop()
		assert.NoFileExists(t, filepath.Join(p.dir, datadir.WorkloadsFile))
	})

	t.Run("a failed save is tried again", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		p := newAgentParts(t, dir, ca, nil)
		p.run(t)
		p.replicate(t, entries)
		require.Eventually(t, func() bool { return p.logs.Contains("saving the workload SVIDs failed; trying again later") },
			10*time.Second, 10*time.Millisecond)
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.Eventually(t, func() bool { c := load(dir); return c != nil && len(c.Entries) == 3 },
			10*time.Second, 10*time.Millisecond)
	})
}

// New fills in the defaults.
func TestNewDefaults(t *testing.T) {
	w := New(Config{})
	assert.Equal(t, DefaultSaveInterval, w.cfg.SaveInterval)
	assert.Equal(t, DefaultReleaseAfterSave, w.cfg.ReleaseAfterSave)
	assert.NotNil(t, w.cfg.Now)
	assert.NotNil(t, w.log)
}
