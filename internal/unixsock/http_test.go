package unixsock

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type connKey struct{}

// TestServeHTTP serves a handler on a unix socket, each connection's
// context derived once; a request in flight when the context ends
// finishes, and the listener is closed; a listener that fails ends
// ServeHTTP with its error.
func TestServeHTTP(t *testing.T) {
	lis, err := Listen(filepath.Join(shortDir(t), "h.sock"), 0o600)
	require.NoError(t, err)
	inFlight, release := make(chan struct{}), make(chan struct{})
	api := HTTP{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(inFlight)
				<-release
			}
			_, _ = io.WriteString(w, r.Context().Value(connKey{}).(string))
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, "unix")
		},
		MaxHeaderBytes: 1 << 10,
		Log:            slog.New(slog.DiscardHandler),
		ShutdownGrace:  10 * time.Second,
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, lis, api) }()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", lis.Addr().String())
	}}
	defer tr.CloseIdleConnections()
	get := func(path string) (string, error) {
		resp, err := (&http.Client{Transport: tr}).Get("http://api" + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get("/")
	require.NoError(t, err)
	assert.Equal(t, "unix", body, "the connection's context")

	slow := make(chan string, 1)
	go func() { b, _ := get("/slow"); slow <- b }()
	<-inFlight
	cancel()
	time.Sleep(50 * time.Millisecond) // Shutdown under way; nothing asserts on time
	close(release)
	assert.Equal(t, "unix", <-slow, "the request in flight finished")
	require.NoError(t, <-done)
	_, err = net.Dial("unix", lis.Addr().String())
	assert.Error(t, err, "the listener is closed")

	// A listener that fails ends ServeHTTP with its error.
	lis2, err := Listen(filepath.Join(shortDir(t), "f.sock"), 0o600)
	require.NoError(t, err)
	require.NoError(t, lis2.Close())
	assert.ErrorIs(t, ServeHTTP(t.Context(), lis2, api), net.ErrClosed)
}
