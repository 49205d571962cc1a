package admin_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
)

func TestStatus(t *testing.T) {
	var sick atomic.Pointer[error]
	e := start(t, func(c *admin.Config) {
		c.Health = func(ctx context.Context) error {
			if err := sick.Load(); err != nil {
				return *err
			}
			return ctx.Err()
		}
	})
	st, err := e.client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: true}, st)

	bad := errors.New("server: no active X.509 CA")
	sick.Store(&bad)
	st, err = e.client.Status(t.Context())
	require.NoError(t, err, "an unhealthy server still answers")
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: false, Reason: "server: no active X.509 CA"}, st)
	assert.Contains(t, e.log.String(), "admin: status: unhealthy")

	code, body := raw(t, e.path, http.MethodGet, "/v1/status", nil)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"trust_domain": "example.org", "healthy": false, "reason": "server: no active X.509 CA"}`, body)
}

// Without a Health function, a server that answers is healthy.
func TestStatusWithoutHealth(t *testing.T) {
	e := start(t)
	st, err := e.client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: true}, st)
}
