package nodetest

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Agent is a node agent (package agent) whose Run runs until the test
// ends or Stop.
type Agent struct {
	*agent.Agent
	// Addr is the address of the agent's Workload API: "unix://" and the
	// path of its socket.
	Addr string

	stop func() error
}

// AgentDefaults returns cfg with what it leaves unset filled as StartAgent
// fills it: the trust domain [TrustDomain]; the unix workload attestor
// (without hashing executables); a Listener on a unix socket in a new
// directory (0700), which the agent owns once agent.New succeeds; RetryMin
// and RetryMax of 20 ms and 200 ms. For a test that calls agent.New
// itself.
func AgentDefaults(t testing.TB, cfg agent.Config) agent.Config {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = TrustDomain
	}
	if cfg.WorkloadAttestors == nil {
		wa, err := unix.New(unix.Config{SkipHash: true})
		require.NoError(t, err)
		cfg.WorkloadAttestors = []attest.WorkloadAttestor{wa}
	}
	if cfg.Listener == nil {
		lis, err := endpoint.ListenUnix(socketPath(t, "api.sock"), 0o700)
		require.NoError(t, err)
		t.Cleanup(func() { lis.Close() }) // in case agent.New fails; closing twice is harmless
		cfg.Listener = lis
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 20 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 200 * time.Millisecond
	}
	return cfg
}

// StartAgent runs an agent of cfg (see [AgentDefaults] for what cfg may
// leave unset) until the test ends, and returns it once it is attested.
// Its Run must then return nil.
func StartAgent(t testing.TB, cfg agent.Config) *Agent {
	t.Helper()
	a, err := TryAgent(t, cfg)
	require.NoError(t, err)
	return a
}

// TryAgent is StartAgent for an agent that may fail: it returns the error
// of agent.New, or that of a Run that returned before the agent attested.
func TryAgent(t testing.TB, cfg agent.Config) (*Agent, error) {
	t.Helper()
	checkLeaks(t)
	cfg = AgentDefaults(t, cfg)
	a, err := agent.New(t.Context(), cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		runErr = a.Run(ctx)
		close(done)
	}()
	// Stop holds the agent only until it is stopped, so that a test may
	// let go of an agent (and its memory) before it ends.
	var held atomic.Pointer[agent.Agent]
	held.Store(a)
	stop := func() error {
		a := held.Swap(nil)
		if a == nil {
			return nil
		}
		cancel()
		<-done
		return errors.Join(runErr, a.Close())
	}
	var attested atomic.Bool
	t.Cleanup(func() {
		err := stop()
		if attested.Load() {
			require.NoError(t, err, "the agent's Run and Close")
		}
	})
	select {
	case <-a.Attested():
		attested.Store(true)
		return &Agent{Agent: a, Addr: "unix://" + cfg.Listener.Addr().String(), stop: stop}, nil
	case <-done:
		return nil, runErr
	case <-time.After(Timeout):
		t.Fatalf("the agent did not attest within %s", Timeout)
		return nil, nil
	}
}

// Stop stops the agent before the test ends, and returns what its Run and
// Close returned. Later calls return nil.
func (a *Agent) Stop() error { return a.stop() }

// WaitSynced waits until the agent has received its entries from a server
// once.
func (a *Agent) WaitSynced(t testing.TB) {
	t.Helper()
	select {
	case <-a.Synced():
	case <-time.After(Timeout):
		t.Fatalf("the agent did not sync within %s", Timeout)
	}
}

// WaitEntries waits until the agent holds n entries. An entry is held
// before it is served: a fetch right after may be told to retry or that the
// caller has no identity; WaitSVID waits until it is served.
func (a *Agent) WaitEntries(t testing.TB, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return a.Stats().Entries == n }, Timeout, 5*time.Millisecond,
		"the agent holds %d entries", n)
}

// fetchTimeout bounds each fetch of WaitSVID, which tries again until
// Timeout.
const fetchTimeout = 5 * time.Second

// FetchX509SVID fetches the test process's default X509-SVID from the
// agent's Workload API, once.
func (a *Agent) FetchX509SVID(t testing.TB) *x509svid.SVID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	return svid
}

// WaitSVID waits until the test process, as a workload of the agent, holds
// an X509-SVID of id, and returns it.
func (a *Agent) WaitSVID(t testing.TB, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	var got *x509svid.SVID
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), fetchTimeout)
		defer cancel()
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.Addr))
		if err != nil {
			return false
		}
		i := slices.IndexFunc(svids, func(s *x509svid.SVID) bool { return s.ID == id })
		if i < 0 {
			return false
		}
		got = svids[i]
		return true
	}, Timeout, 10*time.Millisecond, "the workload holds an X509-SVID of %s", id)
	return got
}

// An Issuer is a server that agents attest to and that registers their
// workloads: a [Server] or a [NodeServer].
type Issuer interface {
	AgentConfig(t testing.TB) agent.Config
	Register(t testing.TB, parent spiffeid.ID, path string) registry.Entry
}

var (
	_ Issuer = (*Server)(nil)
	_ Issuer = (*NodeServer)(nil)
)

// StartWorkload makes the test process a workload of an agent of s: it
// runs an agent of s's AgentConfig, which edit, when not nil, changes
// first, registers the workload at path under it, waits until the workload
// holds the entry's X509-SVID, and returns the entry and a client of the
// agent's Workload API, closed when the test ends, before the agent stops
// (a test may close it sooner).
func StartWorkload(t testing.TB, s Issuer, path string, edit func(*agent.Config)) (registry.Entry, *workloadapi.Client) {
	t.Helper()
	cfg := s.AgentConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	a := StartAgent(t, cfg)
	e := s.Register(t, a.ID(), path)
	a.WaitSVID(t, e.SPIFFEID)
	c, err := workloadapi.New(t.Context(), workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return e, c
}

// StartWITWorkload is StartWorkload of an agent that serves WIT-SVIDs
// (agent.Config.WITSVIDs). Whether the agent obtains WIT-SVIDs is up to s:
// a [Server] with server.Config.WITSVIDs, a [NodeServer] whose CA keeps a
// WIT key.
func StartWITWorkload(t testing.TB, s Issuer, path string) (registry.Entry, *workloadapi.Client) {
	t.Helper()
	return StartWorkload(t, s, path, func(c *agent.Config) { c.WITSVIDs = true })
}
