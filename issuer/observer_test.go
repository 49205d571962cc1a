package issuer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// recorder is an issuer.Observer that keeps what it is told, one line per
// call: "signed x509 2 0", "attested ok".
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Signed(svidType string, n, failed int, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.add(fmt.Sprintf("signed %s %d %d", svidType, n, failed))
}

func (r *recorder) WorkloadAttested(outcome string, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.add("attested " + outcome)
}

func (r *recorder) add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
}

// take returns what the observer was told since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	return out
}

// TestObserverSigningAndAttestation: a caller attested, its two SVIDs
// signed in one batch, a JWT-SVID signed once and then served from the
// cache (no Signer call, nothing observed but the attestation).
func TestObserverSigningAndAttestation(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, issuer.Config{Observer: rec})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID})

	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	sub.Close()
	assert.Equal(t, []string{"attested ok", "signed x509 2 0"}, rec.take())

	params := endpoint.JWTSVIDParams{Audience: []string{"db"}, ID: webID}
	for range 2 {
		_, err = e.iss.FetchJWTSVIDs(t.Context(), self(), params)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"attested ok", "signed jwt 1 0", "attested ok"}, rec.take())
}

// TestObserverAttestationOutcomes: a caller the attestor rejects, and one
// it fails to attest.
func TestObserverAttestationOutcomes(t *testing.T) {
	for _, tt := range []struct {
		name     string
		attestor attest.WorkloadAttestor
		caller   endpoint.Caller
		want     string
	}{
		{"rejected: the process runs as another uid", nil,
			endpoint.Caller{PID: self().PID, UID: self().UID + 4242, GID: self().GID}, "attested rejected"},
		{"error", failingAttestor{errors.New("proc unreadable")}, self(), "attested error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			e := newEnv(t, issuer.Config{Observer: rec, Attestor: tt.attestor})
			e.register(t, registry.Entry{SPIFFEID: webID})
			_, err := e.iss.Subscribe(t.Context(), tt.caller)
			require.Error(t, err)
			assert.Equal(t, []string{tt.want}, rec.take())
		})
	}
}

// TestObserverSigningFailures: a failed batch counts every request as
// failed, so does a JWT-SVID the Signer could not sign; a result the
// issuer refuses (a chain for another identity) counts as failed too.
func TestObserverSigningFailures(t *testing.T) {
	rec := &recorder{}
	s := newRemoteSigner(t)
	s.fail.Store(true)
	e := newAgentEnv(t, s, issuer.Config{Observer: rec})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID})
	_, err := e.iss.Subscribe(t.Context(), self())
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	_, err = e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"db"}, ID: webID})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	assert.Equal(t, []string{"attested ok", "signed x509 2 2", "attested ok", "signed jwt 1 1"}, rec.take())

	// One of two results is for another identity: the issuer refuses it.
	rec = &recorder{}
	s = newRemoteSigner(t)
	s.tamper = func(req issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult {
		if req.Entry.SPIFFEID == webID {
			return res
		}
		chain, err := s.m.X509Authority().SignX509SVID(context.Background(), ca.X509SVIDParams{PublicKey: req.Key.Public(), ID: webID})
		return issuer.X509SVIDResult{Certificates: chain, Err: err}
	}
	e = newAgentEnv(t, s, issuer.Config{Observer: rec})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err, "the refused result costs the caller only that SVID")
	defer sub.Close()
	require.Len(t, sub.Snapshot().RawX509SVIDs, 1)
	assert.Equal(t, webID, sub.Snapshot().RawX509SVIDs[0].ID)
	assert.Equal(t, []string{"attested ok", "signed x509 2 1"}, rec.take())
}
