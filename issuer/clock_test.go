package issuer_test

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// steppedClock is a clock stepped by the test: the time plus an offset.
type steppedClock struct{ offset atomic.Int64 }

func (c *steppedClock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *steppedClock) step(d time.Duration) { c.offset.Add(int64(d)) }

// countingSigner counts the X509-SVID requests it passes on.
type countingSigner struct {
	issuer.Signer
	n atomic.Int64
}

func (s *countingSigner) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	s.n.Add(int64(len(reqs)))
	return s.Signer.SignX509SVIDs(ctx, reqs)
}

func leafOf(t testing.TB, sub endpoint.Subscription) *x509.Certificate {
	t.Helper()
	return rawLeaf(t, sub.Snapshot().RawX509SVIDs[0])
}

// Property: when the clock (Config.Now) is stepped, an open stream is
// served a valid SVID within seconds, not at the re-mint time its timer
// was set for: after a step forward past the SVID's expiry, and after a
// step back to before the NotBefore of one minted meanwhile (from what is
// now the future, which peers would refuse for hours).
func TestClockStepped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &steppedClock{}
		m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, Now: clk.Now})
		require.NoError(t, err)
		e := newEnv(t, issuer.Config{Trust: issuer.TrustFromAuthority(m), Signer: issuer.NewLocalSigner(m),
			Now: clk.Now, X509SVIDTTL: time.Hour})
		e.register(t, registry.Entry{SPIFFEID: webID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		valid := func() bool {
			now, leaf := clk.Now(), leafOf(t, sub)
			return !now.Before(leaf.NotBefore) && now.Before(leaf.NotAfter)
		}
		require.True(t, valid())

		for _, step := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
			before := leafOf(t, sub).SerialNumber
			clk.step(step)
			require.False(t, valid(), "the step makes the SVID unusable")
			time.Sleep(3 * time.Second)
			synctest.Wait()
			assert.True(t, valid(), "after a step of %v, the stream holds a valid SVID", step)
			assert.NotEqual(t, before, leafOf(t, sub).SerialNumber)
		}
	})
}

// Property: an SVID that is not valid yet by the issuer's clock only
// because its signer's clock runs ahead is served, not minted again and
// again: minting again would give the same.
func TestSignerAheadIsNotAskedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ahead := &steppedClock{}
		ahead.step(time.Minute) // more than the 10 s NotBefore is backdated
		m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, Now: ahead.Now})
		require.NoError(t, err)
		signer := &countingSigner{Signer: issuer.NewLocalSigner(m)}
		e := newEnv(t, issuer.Config{Trust: issuer.TrustFromAuthority(m), Signer: signer, X509SVIDTTL: time.Hour})
		e.register(t, registry.Entry{SPIFFEID: webID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		require.True(t, time.Now().Before(leafOf(t, sub).NotBefore), "not valid yet by the issuer's clock")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, int64(1), signer.n.Load(), "one mint")
	})
}
