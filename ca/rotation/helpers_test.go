package rotation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/require"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	workload = spiffeid.RequireFromPath(td, "/workload")
	t0       = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

// clock is a manual clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = td
	}
	m, err := New(t.Context(), cfg)
	require.NoError(t, err)
	return m
}

func workloadKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func mintSVID(t testing.TB, m *Manager, ttl time.Duration) []*x509.Certificate {
	t.Helper()
	chain, err := m.SignX509SVID(t.Context(), ca.X509SVIDParams{
		PublicKey: workloadKey(t).Public(), ID: workload, TTL: ttl,
	})
	require.NoError(t, err)
	return chain
}

// verifyAt checks chain against the manager's current bundle at time at.
func verifyAt(m *Manager, chain []*x509.Certificate, at time.Time) error {
	_, _, err := x509svid.Verify(chain, m.Bundle(), x509svid.WithTime(at))
	return err
}

func sequence(t testing.TB, m *Manager) uint64 {
	t.Helper()
	seq, ok := m.Bundle().SequenceNumber()
	require.True(t, ok)
	return seq
}

func countStates(infos []AuthorityInfo) map[State]int {
	out := make(map[State]int)
	for _, i := range infos {
		out[i.State]++
	}
	return out
}

func findState(infos []AuthorityInfo, s State) (AuthorityInfo, bool) {
	for _, i := range infos {
		if i.State == s {
			return i, true
		}
	}
	return AuthorityInfo{}, false
}

// tokenKeyID returns the kid of a compact JWS without checking anything.
func tokenKeyID(t testing.TB, token string) string {
	t.Helper()
	header, _, ok := strings.Cut(token, ".")
	require.True(t, ok)
	raw, err := base64.RawURLEncoding.DecodeString(header)
	require.NoError(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	return h.Kid
}

// drain empties a notification channel and reports whether it held a value.
func drain(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func randomSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	require.NoError(t, err)
	return n
}
