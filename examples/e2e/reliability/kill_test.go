package reliability_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mrand "math/rand/v2"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// backends are the datastores the server kill tests run over.
var backends = []string{"sqlite", "postgres"}

// eachBackend runs f over each of backends, in a subtest whose goroutines
// are checked once the programs it started are stopped.
func eachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	programs(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Cleanup(leaktest.Check(t)) // registered first, run last: after the programs are stopped
			f(t, backend)
		})
	}
}

// rotationCATTL is the CA lifetime of the rotation kill test: short, so
// that a CA is prepared, activated and retired every few seconds.
const rotationCATTL = 12 * time.Second

// TestKillServerDuringRotation kills the server (SIGKILL) while its CA
// rotates (12 s CAs: one is prepared or activated every few seconds)
// and an agent serves a workload short-lived SVIDs, at a random moment:
// half of the kills aim at the next rotation threshold (a preparation or
// an activation), give or take 300 ms, the others fall anywhere in a CA's
// life. After each kill:
// the journal reads back whole, the SQLite database passes its integrity
// check, the server starts again from them, no entry is lost or
// duplicated, and every SVID the workload (and the agent) was issued
// verifies against the restarted server's bundle until it expires.
func TestKillServerDuringRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) { killDuringRotation(t, backend, runs(t, 1, 25)) })
}

func killDuringRotation(t *testing.T, backend string, n int) {
	rng := newRand(t)
	s := newServer(t, backend, "-ca-ttl", rotationCATTL.String(), "-x509-svid-ttl", "4s", "-jwt-svid-ttl", "4s",
		"-agent-svid-ttl", "6s")
	s.start()
	s.e.StartAgent(s.e.Token())
	entries := newEntryLedger()
	agentID := s.e.AgentID()
	var want []spiffeid.ID
	for _, path := range []string{"/web", "/db"} {
		e := s.register(agentID, path)
		entries.ack(e.ID, e.SPIFFEID.String())
		want = append(want, e.SPIFFEID)
	}
	// The workload starts once its entries reached the agent: before, it
	// is rightly told it has no identity.
	waitServed(t, "unix://"+s.e.APISock, want)
	svids := newSVIDLedger()
	stopWorkload := workload(t, "unix://"+s.e.APISock, svids)
	defer stopWorkload()
	progtest.WaitFor(t, "the workload's first SVIDs", func() bool { return svids.count() >= 3 })

	aimed := 0
	for run := range n {
		wait, aim := s.killPoint(rng)
		if aim != "" {
			aimed++
		}
		t.Logf("run %d: kill in %s (%s)", run+1, wait.Round(time.Millisecond), or(aim, "anywhere"))
		time.Sleep(wait)
		s.kill()
		s.checkStopped()
		s.start()
		entries.check(t, s.entries)
		b := s.bundle()
		svids.addSavedWhileRunning(t, filepath.Join(s.e.Dir, "agent-data"))
		svids.check(t, b, b, "the restarted server's bundle")
		endRun(t, run)
	}
	fetched := stopWorkload()
	assert.Zero(t, fetched.denied, "answers to the workload that it had no identity")
	report(t, "%d kills (%d aimed at a rotation threshold), %d entries acknowledged, %d lost, %d duplicated; "+
		"%d SVIDs issued, %d verifications after restarts, %d failed; workload: %s",
		n, aimed, entries.size(), entries.lost, entries.dup, svids.issued, svids.verified, svids.failed, fetched)
}

// or returns s, or def if s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// backdate is how far the CA backdates the certificates it signs, which
// the rotation counts in a CA's life.
const backdate = 10 * time.Second

// killPoint chooses when to kill the server: half of the time at the next
// rotation threshold of the active X.509 CA, give or take 300 ms, and
// which: the preparation of its successor, at half its life, or the
// activation of the successor, at 5/6 of it or when less than an
// X509-SVID's lifetime (4 s) is left, as ca/rotation computes them; else
// at any moment of a CA's life.
func (s *server) killPoint(rng *mrand.Rand) (time.Duration, string) {
	s.t.Helper()
	anywhere := jitter(rng, 0, rotationCATTL)
	if rng.IntN(2) == 0 {
		return anywhere, ""
	}
	ctx, cancel := s.ctx()
	defer cancel()
	auths, err := s.admin.Authorities(ctx)
	require.NoError(s.t, err)
	for _, a := range auths {
		if a.Kind != registry.AuthorityX509 || !a.Local || a.State != registry.AuthorityActive {
			continue
		}
		life := rotationCATTL + backdate
		notBefore := a.NotAfter.Add(-life)
		prepare := notBefore.Add(life / 2)
		activate := notBefore.Add(life * 5 / 6)
		if reserve := a.NotAfter.Add(-4 * time.Second); reserve.Before(activate) {
			activate = reserve
		}
		if activate.Before(prepare) {
			activate = prepare
		}
		for _, ev := range []struct {
			name string
			at   time.Time
		}{{"preparation", prepare}, {"activation", activate}} {
			if wait := time.Until(ev.at) + jitter(rng, -300*time.Millisecond, 300*time.Millisecond); wait > 0 {
				return wait, ev.name
			}
		}
	}
	return anywhere, ""
}

// register creates the entry of path under parent for the test process,
// through the admin socket.
func (s *server) register(parent, path string) registry.Entry {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	e, err := s.admin.CreateEntry(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.td, path),
		ParentID:  spiffeid.RequireFromString(parent),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}},
	})
	require.NoError(s.t, err)
	return e
}

// count returns how many SVIDs l recorded.
func (l *svidLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.issued
}

// addSaved records the agent SVID saved in the agent data directory dir,
// which must read back with its key.
func (l *svidLedger) addSaved(t *testing.T, dir string) {
	t.Helper()
	svid, err := x509svid.Load(filepath.Join(dir, "agent-svid.pem"), filepath.Join(dir, "agent-key.pem"))
	require.NoError(t, err, "the agent's saved SVID and key")
	l.add([]*x509svid.SVID{svid}, nil)
}

// addSavedWhileRunning records the agent SVID saved in the data directory dir
// of an agent that runs, and so may be saving a renewed one: it reads
// until it finds the SVID and its key saved.
func (l *svidLedger) addSavedWhileRunning(t *testing.T, dir string) {
	t.Helper()
	var svid *x509svid.SVID
	progtest.WaitFor(t, "the running agent's saved SVID and key", func() bool {
		var err error
		svid, err = x509svid.Load(filepath.Join(dir, "agent-svid.pem"), filepath.Join(dir, "agent-key.pem"))
		if err != nil {
			progtest.Note(t, err.Error())
		}
		return err == nil
	})
	l.add([]*x509svid.SVID{svid}, nil)
}

// TestKillServerDuringBatchWrites kills the server (SIGKILL) while an
// operator creates entries in batches of 1 to 500 with "entry create
// -data", one batch after the other, at a random moment. After each kill:
// every entry the command printed (acknowledged) is there, none twice, the
// batch whose answer the kill cut off is there in full or not at all, and
// the journal and database read back.
func TestKillServerDuringBatchWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) { killDuringBatchWrites(t, backend, runs(t, 2, 25)) })
}

func killDuringBatchWrites(t *testing.T, backend string, n int) {
	rng := newRand(t)
	s := newServer(t, backend)
	s.start()
	entries := newEntryLedger()
	next := 0
	for run := range n {
		ctx, cancel := context.WithCancel(t.Context())
		wrng := mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))
		errc := make(chan error, 1)
		go func() { errc <- s.writeEntries(ctx, wrng, entries, "spiffe://example.org/node", "batch", &next, 500) }()
		wait := jitter(rng, 50*time.Millisecond, 1500*time.Millisecond)
		t.Logf("run %d: kill in %s", run+1, wait.Round(time.Millisecond))
		time.Sleep(wait)
		s.kill()
		err := <-errc
		cancel()
		require.Error(t, err, "the batch under way when the server was killed fails")
		s.checkStopped()
		s.start()
		entries.check(t, s.entries)
		endRun(t, run)
	}
	report(t, "%d kills, %d entries acknowledged, %d lost, %d duplicated, %d batches torn",
		n, entries.size(), entries.lost, entries.dup, entries.torn)
}

// TestKillServerDuringFederationRefresh kills, at a random moment, a
// server (example.org) that refreshes every second the bundle of a
// federation peer (partner.test, another server, whose 30 s CAs change its
// bundle every few seconds), while entries are written to it in small
// batches. After each kill: the stored bundle of partner.test is one the
// peer published (each authority one the peer had), the refresh catches
// up with the peer on its own, and no entry is lost or duplicated.
func TestKillServerDuringFederationRefresh(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) { killDuringFederationRefresh(t, backend, runs(t, 1, 25)) })
}

func killDuringFederationRefresh(t *testing.T, backend string, n int) {
	rng := newRand(t)
	peer := newPeer(t)
	s := newServer(t, backend, "-config", peer.relationship(t), "-federation-refresh", "1s")
	s.start()
	seen := peer.watch()
	defer seen.stop()
	entries := newEntryLedger()
	next := 0
	progtest.WaitFor(t, "example.org to keep partner.test's bundle", func() bool { return s.federated(peer.td) != nil })
	for run := range n {
		ctx, cancel := context.WithCancel(t.Context())
		wrng := mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))
		errc := make(chan error, 1)
		go func() { errc <- s.writeEntries(ctx, wrng, entries, "spiffe://example.org/node", "fed", &next, 20) }()
		wait := jitter(rng, 0, 3*time.Second)
		t.Logf("run %d: kill in %s", run+1, wait.Round(time.Millisecond))
		time.Sleep(wait)
		s.kill()
		<-errc
		cancel()
		s.checkStopped()
		s.start()
		stored := s.federated(peer.td)
		require.NotNil(t, stored, "the stored bundle of partner.test")
		seen.check(t, stored)
		progtest.WaitFor(t, "the refresh to catch up with partner.test", func() bool {
			return sameX509Authorities(s.federated(peer.td), peer.bundle())
		})
		entries.check(t, s.entries)
		endRun(t, run)
	}
	report(t, "%d kills; the stored peer bundle was one the peer published after every kill and caught up; "+
		"%d peer authorities seen; %d entries acknowledged, %d lost, %d duplicated, %d batches torn",
		n, seen.size(), entries.size(), entries.lost, entries.dup, entries.torn)
}

// federated returns the server's stored bundle of td, or nil if it has
// none.
func (s *server) federated(td spiffeid.TrustDomain) *spiffebundle.Bundle {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	fb, err := s.admin.FederatedBundle(ctx, td)
	if err != nil {
		progtest.Note(s.t, "the federated bundle: "+err.Error())
		return nil
	}
	b, err := spiffebundle.Parse(td, fb.Document)
	require.NoError(s.t, err, "the stored bundle of %s", td)
	return b
}

// sameX509Authorities reports whether a and b hold the same X.509
// authorities.
func sameX509Authorities(a, b *spiffebundle.Bundle) bool {
	return a != nil && b != nil && a.X509Bundle().Equal(b.X509Bundle())
}

// peerCATTL is the CA lifetime of the federation peer: its bundle changes
// every few seconds, and each CA is published 10 s or more before it signs
// (time for the federating server to fetch it). With CAs of 12 s, which
// certificates backdated by 10 s make look 22 s old, the rotation publishes
// some CAs a second before they sign, and a server down for that second
// can no longer verify the peer (see docs/RELIABILITY.md, Limits).
const peerCATTL = 30 * time.Second

// peer is the federation peer: a partner.test server with a bundle
// endpoint, whose CAs live peerCATTL.
type peer struct {
	*server
	fedBind string
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{fedBind: progtest.FreePort(t)}
	p.server = newServer(t, "sqlite")
	p.td = spiffeid.RequireTrustDomainFromString("partner.test")
	p.e.ServerArgs = []string{"run", "-trust-domain", "partner.test", "-data-dir", p.dataDir(), "-bind", p.e.Bind,
		"-admin-socket", p.e.AdminSock, "-federation-bind", p.fedBind,
		"-ca-ttl", peerCATTL.String(), "-x509-svid-ttl", "2s", "-jwt-svid-ttl", "2s"}
	p.start()
	return p
}

// relationship writes the configuration file of a server federating with
// the peer and returns its path.
func (p *peer) relationship(t *testing.T) string {
	t.Helper()
	doc, err := p.bundle().Marshal()
	require.NoError(t, err)
	file := filepath.Join(p.e.Dir, p.td.Name()+".json")
	require.NoError(t, os.WriteFile(file, doc, 0o644))
	return progtest.FederationConfig(t, p.e.Dir, p.td.Name(), p.fedBind, file)
}

// authoritySet is the set of authorities (X.509 CA certificates by their
// SHA-256, JWT keys by ID) a peer's bundle held at some point.
type authoritySet struct {
	mu     sync.Mutex
	seen   map[string]bool
	record func() // reads the peer's bundle once
	stop   func()
}

// watch reads the peer's bundle every 100 ms until stop, recording every
// authority it holds.
func (p *peer) watch() *authoritySet {
	ctx, cancel := context.WithCancel(context.Background())
	s := &authoritySet{seen: map[string]bool{}}
	done := make(chan struct{})
	s.stop = sync.OnceFunc(func() { cancel(); <-done })
	s.record = func() {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		defer fcancel()
		doc, err := p.admin.Bundle(fctx, "spiffe")
		if err != nil {
			return
		}
		b, err := spiffebundle.Parse(p.td, doc)
		if err != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range authorityKeys(b) {
			s.seen[k] = true
		}
	}
	s.record()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s.record()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// authorityKeys yields the keys of b's authorities in an authoritySet.
func authorityKeys(b *spiffebundle.Bundle) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, c := range b.X509Authorities() {
			sum := sha256.Sum256(c.Raw)
			if !yield("x509:" + hex.EncodeToString(sum[:8])) {
				return
			}
		}
		for kid := range b.JWTAuthorities() {
			if !yield("jwt:" + kid) {
				return
			}
		}
	}
}

func (s *authoritySet) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// check fails t if b holds an authority the peer never published. It
// reads the peer's bundle first: b may hold an authority published since
// the last read of the watch.
func (s *authoritySet) check(t *testing.T, b *spiffebundle.Bundle) {
	t.Helper()
	s.record()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range authorityKeys(b) {
		assert.True(t, s.seen[k], "the stored bundle of the peer holds an authority the peer never published (%s)", k)
	}
}

// TestKillAgentDuringRenewal kills the agent (SIGKILL), whose SVID lives
// 8 s and is renewed every 4 s, at a random moment, and starts it again at
// once with the same arguments: its join token is spent, so it must go on
// with the SVID it saved (which has at least half its life left, 4 s, for
// the restart on a loaded machine). After each kill: the saved SVID and key read
// back and the agent reuses them (it does not attest again), the server
// still lists one agent, the workload gets both its SVIDs again, and
// every SVID issued before the kill verifies against the server's bundle
// and the one the agent serves until it expires.
func TestKillAgentDuringRenewal(t *testing.T) {
	programs(t)
	t.Cleanup(leaktest.Check(t)) // registered first, run last: after the programs are stopped
	rng := newRand(t)
	n := runs(t, 3, 100)
	s := newServer(t, "sqlite", "-agent-svid-ttl", "8s", "-x509-svid-ttl", "6s")
	s.start()
	args := s.e.AgentArgs(s.e.Token())
	agent := progtest.Start(t, s.e.AgentBin, args...)
	agentID := s.e.AgentID()
	entries := newEntryLedger()
	var want []spiffeid.ID
	for _, path := range []string{"/web", "/db"} {
		e := s.register(agentID, path)
		entries.ack(e.ID, e.SPIFFEID.String())
		want = append(want, e.SPIFFEID)
	}
	addr := "unix://" + s.e.APISock
	svids := newSVIDLedger()
	waitServed(t, addr, want) // before, the workload is rightly told it has no identity
	stopWorkload := workload(t, addr, svids)
	defer stopWorkload()
	dir := filepath.Join(s.e.Dir, "agent-data")
	renewals := 0
	for run := range n {
		wait := jitter(rng, 0, 4*time.Second)
		t.Logf("run %d: kill in %s", run+1, wait.Round(time.Millisecond))
		time.Sleep(wait)
		agent.Stop(t, syscall.SIGKILL)
		renewals += countLines(agent.Output(), "agent SVID renewed")
		svids.addSaved(t, dir)
		agent = progtest.Start(t, s.e.AgentBin, args...)
		waitServed(t, addr, want)
		require.Contains(t, agent.Output(), "reusing the saved agent SVID", "the restarted agent reuses its SVID")
		ctx, cancel := s.ctx()
		agents, err := s.admin.ListAgents(ctx)
		cancel()
		require.NoError(t, err)
		require.Len(t, agents, 1, "one agent")
		require.Equal(t, agentID, agents[0].ID.String())
		bundles := fetchBundles(t, addr)
		svids.check(t, bundles.x509, bundles.jwt, "the restarted agent's bundle")
		b := s.bundle()
		svids.check(t, b, b, "the server's bundle")
		entries.check(t, s.entries)
		endRun(t, run)
	}
	fetched := stopWorkload()
	assert.Zero(t, fetched.denied, "answers to the workload that it had no identity (a restarted agent must say retry until it synced)")
	report(t, "%d kills, %d renewals before them; the agent came back with its saved SVID every time; "+
		"%d SVIDs issued, %d verifications after restarts, %d failed; workload (failing while the agent is down): %s",
		n, renewals, svids.issued, svids.verified, svids.failed, fetched)
}
