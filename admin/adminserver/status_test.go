package adminserver_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
)

func TestStatus(t *testing.T) {
	var sick atomic.Pointer[error]
	e := admintest.Start(t, func(c *adminserver.Config) {
		c.Health = func(ctx context.Context) error {
			if err := sick.Load(); err != nil {
				return *err
			}
			return ctx.Err()
		}
	})
	st, err := e.Client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: true}, st)

	bad := errors.New("server: no active X.509 CA")
	sick.Store(&bad)
	st, err = e.Client.Status(t.Context())
	require.NoError(t, err, "an unhealthy server still answers")
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: false, Reason: "server: no active X.509 CA"}, st)
	assert.Contains(t, e.Log.String(), "admin: status: unhealthy")

	code, body := admintest.Raw(t, e.Path, http.MethodGet, "/v1/status", nil)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"trust_domain": "example.org", "healthy": false, "reason": "server: no active X.509 CA"}`, body)
}

// Without a Health function, a server that answers is healthy.
func TestStatusWithoutHealth(t *testing.T) {
	e := admintest.Start(t)
	st, err := e.Client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, admin.Status{TrustDomain: td, Healthy: true}, st)
}
