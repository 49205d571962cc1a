package issuer

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

type fixedTrust struct{ b *spiffebundle.Bundle }

func (t fixedTrust) Bundle() *spiffebundle.Bundle       { return t.b }
func (fixedTrust) ActiveX509CA() *x509.Certificate      { return nil }
func (fixedTrust) TaintedX509CAs() []*x509.Certificate  { return nil }
func (fixedTrust) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }
func (fixedTrust) Attest(context.Context, attest.Workload) (attest.Selectors, error) {
	return attest.Selectors{}, nil
}

type noSigner struct{}

func (noSigner) SignX509SVIDs(context.Context, []X509SVIDRequest) ([]X509SVIDResult, error) {
	return nil, nil
}
func (noSigner) SignJWTSVID(context.Context, JWTSVIDRequest) (string, error) { return "", nil }

// polledStore hides memstore's notifications.
type polledStore struct{ index.Source }

// TestDefaultPollInterval: a registry that signals its writes is read on
// each signal and polled only as a safety net; one that does not is polled
// every second.
func TestDefaultPollInterval(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{})
	for _, tc := range []struct {
		name string
		reg  index.Source
		conf time.Duration
		want time.Duration
	}{
		{"notifier", store, 0, DefaultSafetyPollInterval},
		{"polled", polledStore{store}, 0, DefaultPollInterval},
		{"chosen", store, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := New(t.Context(), Config{
				Trust:        fixedTrust{spiffebundle.New(td)},
				Signer:       noSigner{},
				Registry:     tc.reg,
				Attestor:     fixedTrust{},
				PollInterval: tc.conf,
			})
			require.NoError(t, err)
			defer i.Close()
			assert.Equal(t, tc.want, i.poll)
		})
	}
}
