package spiffetls_test

import (
	"crypto/x509"
	"errors"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

func authorizeAny() tlsconfig.Authorizer              { return tlsconfig.AuthorizeAny() }
func authorizeID(id spiffeid.ID) tlsconfig.Authorizer { return tlsconfig.AuthorizeID(id) }

// counter is an Authorizer that counts its calls and can be switched to
// reject.
type counter struct {
	calls  atomic.Int32
	reject atomic.Bool
}

var errRejected = errors.New("rejected by test")

func (c *counter) authorize(spiffeid.ID, [][]*x509.Certificate) error {
	c.calls.Add(1)
	if c.reject.Load() {
		return errRejected
	}
	return nil
}
