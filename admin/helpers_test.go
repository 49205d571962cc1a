package admin_test

import (
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
)

// td is the trust domain of the servers admintest starts.
var td = admintest.TrustDomain

// canned serves every request on a unix socket with status and the body
// answer, for answers a real server never gives, and returns a client of
// it.
func canned(t *testing.T, status int, answer string) *admin.Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "canned.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(lis) }()
	c := admin.Dial(path)
	t.Cleanup(func() {
		c.Close()
		hs.Close()
		<-done
	})
	return c
}
