//go:build !windows

package kit_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestSpiffekitAgent runs the kit against spiffekit's node agent, served
// by an issuing server, with X509-SVIDs short-lived enough to see one
// rotation: every MUST rule passes.
func TestSpiffekitAgent(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	e, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:    spiffeid.RequireFromPath(s.TrustDomain(), "/web"),
		ParentID:    a.ID(),
		Selectors:   []attest.Selector{nodetest.UID()},
		X509SVIDTTL: 4 * time.Second,
	})
	require.NoError(t, err)
	a.WaitSVID(t, e.SPIFFEID)

	r := check(t, kit.WorkloadConfig{Addr: a.Addr, RotationWait: time.Minute})
	requireAllMustPass(t, r)
	v := r.Verdicts()
	assert.Equal(t, kit.Pass, v["WAPI rule 4b"], "the rotation was seen")
	for _, rule := range []string{"WE rule 6", "WAPI rule 10a", "WAPI rule 11", "WAPI rule 12", "WAPI rule 13", "WAPI rule 14", "X509 rule 21", "JWT step S7"} {
		assert.Equal(t, kit.Pass, v[rule], rule)
	}
}

// TestSpiffekitAgentWIT runs the kit against spiffekit's node agent with
// the WIT-SVID profile on, its WIT-SVIDs signed by the issuing server for
// keys the agent generated: every MUST rule passes, the WIT rules among
// them.
func TestSpiffekitAgentWIT(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{WITSVIDs: true})
	cfg := s.AgentConfig(t)
	cfg.WITSVIDs = true
	a := nodetest.StartAgent(t, cfg)
	e, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.TrustDomain(), "/web"),
		ParentID:  a.ID(),
		Selectors: []attest.Selector{nodetest.UID()},
	})
	require.NoError(t, err)
	a.WaitSVID(t, e.SPIFFEID)

	r := check(t, kit.WorkloadConfig{Addr: a.Addr})
	requireAllMustPass(t, r)
	v := r.Verdicts()
	for _, rule := range []string{"WIT rule 1", "WIT rule 2", "WIT rule 3", "WIT rule 5", "WIT rule 6", "WIT rule 7", "WIT rule 12", "WIT rule 13", "WIT rule 16a", "WIT rule 16b", "WIT rule 17a", "WIT rule 17b", "WIT rule 17c"} {
		assert.Equal(t, kit.Pass, v[rule], rule)
	}
}

// TestSpiffekitIssuer runs the kit against the embedded issuer (package
// issuer behind workloadapi/endpoint, its CA rotating in process), and
// through a second endpoint of the same issuer that identifies callers as
// a uid with no entry: every MUST rule passes, and the unregistered
// caller is refused.
func TestSpiffekitIssuer(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	ctx, cancel := context.WithCancel(t.Context())
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	attestor, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	iss, err := issuer.New(ctx, issuer.Config{
		Trust:    issuer.TrustFromAuthority(ca),
		Signer:   issuer.NewLocalSigner(ca),
		Registry: store,
		Attestor: attestor,
	})
	require.NoError(t, err)
	// The same CA and entries, for callers that attest as a uid without
	// an entry.
	unregistered, err := issuer.New(ctx, issuer.Config{
		Trust:    issuer.TrustFromAuthority(ca),
		Signer:   issuer.NewLocalSigner(ca),
		Registry: store,
		Attestor: fixedSelectors{attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid()+1)}},
	})
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "kit")
	require.NoError(t, err)

	var stops []func()
	run := func(f func(context.Context) error) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = f(ctx)
		}()
		stops = append(stops, func() { <-done })
	}
	run(ca.Run)
	run(iss.Run)
	run(unregistered.Run)
	serve := func(name string, h endpoint.Handler) string {
		srv, err := endpoint.New(endpoint.Config{Handler: h})
		require.NoError(t, err)
		lis, err := endpoint.ListenUnix(filepath.Join(dir, name), 0o700)
		require.NoError(t, err)
		run(func(ctx context.Context) error { return srv.Serve(ctx, lis) })
		return "unix://" + lis.Addr().String()
	}
	addr := serve("api.sock", iss)
	other := serve("other.sock", unregistered)
	t.Cleanup(func() {
		cancel()
		for _, stop := range stops {
			stop()
		}
		iss.Close()
		unregistered.Close()
		os.RemoveAll(dir)
	})

	_, err = store.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}},
	})
	require.NoError(t, err)
	require.NoError(t, iss.Sync(ctx))

	r := check(t, kit.WorkloadConfig{Addr: addr, UnregisteredAddr: other})
	requireAllMustPass(t, r)
	assert.Equal(t, kit.Pass, r.Verdicts()["WAPI rule 10b"], "%s", text(t, r))
}

// fixedSelectors is a workload attestor that gives every caller the same
// selectors.
type fixedSelectors []attest.Selector

func (f fixedSelectors) Attest(context.Context, attest.Workload) (attest.Selectors, error) {
	return attest.NewSelectors(f...), nil
}
