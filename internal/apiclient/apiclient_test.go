package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/apiclient"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

var errDenied = errors.New("pkg: permission denied")

// TestHTTPClient: every request goes to the socket, whatever its host.
func TestHTTPClient(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	dir, err := os.MkdirTemp("", "apic")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Host, r.URL.Path)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	defer func() { srv.Shutdown(context.Background()); <-done }()

	hc := apiclient.HTTPClient(path, 2)
	defer hc.CloseIdleConnections()
	for _, host := range []string{"admin", "launcher"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+host+"/v1/x", nil)
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, host+" /v1/x", string(b))
	}
}

func TestDialError(t *testing.T) {
	// Nothing listens: the request could not reach the server.
	none := filepath.Join(t.TempDir(), "none.sock")
	hc := apiclient.HTTPClient(none, 1)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://x/", nil)
	require.NoError(t, err)
	_, doErr := hc.Do(req)
	require.Error(t, doErr)
	err = apiclient.DialError("pkg", "the server", none, errDenied, doErr)
	assert.EqualError(t, err, "pkg: cannot reach the server at "+none+": dial unix "+none+": connect: no such file or directory",
		"the cause, without the request's URL")
	assert.ErrorIs(t, err, syscall.ENOENT, "the cause is kept")
	assert.NotErrorIs(t, err, errDenied)

	// A request that timed out: its cause, for errors.Is too.
	err = apiclient.DialError("pkg", "the server", none, errDenied, &url.Error{Op: "Get", URL: "http://x/", Err: context.DeadlineExceeded})
	assert.EqualError(t, err, "pkg: cannot reach the server at "+none+": context deadline exceeded")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// The socket's mode, or a security policy, refused the connection: the
	// package's sentinel, said once, with the socket, the caller and what
	// to do.
	uid := strconv.Itoa(os.Getuid())
	for errno, want := range map[syscall.Errno]string{
		syscall.EACCES: "pkg: permission denied: uid " + uid + " may not connect to /run/x.sock: the mode of the socket or of a directory above it refuses that uid; run as a user they allow, such as the socket's owner",
		syscall.EPERM:  "pkg: permission denied: uid " + uid + " may not connect to /run/x.sock: the system's security policy refused it (operation not permitted)",
	} {
		cause := &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errno)}}
		err = apiclient.DialError("pkg", "the server", "/run/x.sock", errDenied, cause)
		assert.ErrorIs(t, err, errDenied, errno)
		assert.ErrorIs(t, err, errno)
		assert.EqualError(t, err, want)
		_, ok := errors.AsType[*apiclient.DeniedError](err)
		assert.True(t, ok)
	}
}

func TestRefused(t *testing.T) {
	sentinel := errors.New("pkg: not found")
	for _, tt := range []struct {
		name, said, msg, want string
		sentinel              error
	}{
		{"a message naming the package is kept", "the server said: ", "pkg: no such thing", "pkg: no such thing", sentinel},
		{"another is said after the package", "the server said: ", "no such thing", "pkg: the server said: no such thing", sentinel},
		{"with nothing said before it", "", "no such thing", "pkg: no such thing", nil},
		{"another package's prefix is not the package's", "", "pkgx: no", "pkg: pkgx: no", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := apiclient.Refused("pkg", tt.said, tt.msg, tt.sentinel)
			assert.EqualError(t, err, tt.want)
			if tt.sentinel != nil {
				assert.ErrorIs(t, err, tt.sentinel)
			} else {
				assert.NoError(t, err.Unwrap())
			}
		})
	}
}
