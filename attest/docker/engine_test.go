package docker

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

const testID = "3f1c9e0b7a5d4c2e8f6a1b0d9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"

// serve answers the Engine API's requests on a unix socket with handler,
// and returns an engine that asks it.
func serve(t *testing.T, handler http.HandlerFunc) *engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "engine")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: handler}
	done := make(chan struct{})
	go func() { srv.Serve(lis); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return newEngine(sock, 5*time.Second)
}

// TestEngineAnswers checks how the client takes each kind of answer the
// daemon could give; the answers that matter to attestation come from a
// real daemon in TestAttest.
func TestEngineAnswers(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, tt := range []struct {
		name    string
		status  int
		body    string
		found   bool
		wantErr string
	}{
		{name: "a container", status: 200, body: `{"Id":"` + testID + `","Image":"sha256:ab","State":{"Running":true,"Pid":7},"Config":{"Image":"web:1","Labels":{"a":"b"},"Env":["A=1"]}}`, found: true},
		{name: "unknown", status: 404, body: `{"message":"No such container: ` + testID + `"}`},
		{name: "a failure", status: 500, body: `{"message":"the daemon is sad"}`, wantErr: "500 Internal Server Error: the daemon is sad"},
		{name: "a failure without a message", status: 500, body: ``, wantErr: "no message"},
		{name: "a failure with a long message", status: 503, body: strings.Repeat("é", 300), wantErr: "..."},
		{name: "another container", status: 200, body: `{"Id":"` + strings.Repeat("0", 64) + `"}`, wantErr: "described container"},
		{name: "no JSON", status: 200, body: `<html>`, wantErr: "decoding the daemon's answer"},
		{name: "too large", status: 200, body: `{"Id":"` + strings.Repeat(" ", maxResponseSize) + `"}`, wantErr: "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/containers/"+testID+"/json" {
					http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
					return
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			c, found, err := e.inspect(t.Context(), testID)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.False(t, found)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.found, found)
			if found {
				assert.Equal(t, testID, c.ID)
				assert.Equal(t, "sha256:ab", c.Image)
				assert.Equal(t, 7, c.State.Pid)
				assert.True(t, c.State.Running)
				assert.Equal(t, "web:1", c.Config.Image)
				assert.Equal(t, map[string]string{"a": "b"}, c.Config.Labels)
				assert.Equal(t, []string{"A=1"}, c.Config.Env)
			}
		})
	}
}

func TestEngineTimeout(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	release := make(chan struct{})
	e := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	e.timeout = 50 * time.Millisecond
	_, _, err := e.inspect(t.Context(), testID)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func FuzzParseContainer(f *testing.F) {
	f.Add([]byte(`{"Id":"` + testID + `","Image":"sha256:ab","State":{"Running":true,"Pid":7},"Config":{"Image":"web:1","Labels":{"a":"b"},"Env":["A=1"]}}`))
	f.Add([]byte(`{"message":"No such container"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseContainer(data)
		if err != nil {
			return
		}
		// What decodes makes selectors without panicking, all valid.
		a, err := New(Config{AllowedEnv: []string{"A"}})
		require.NoError(t, err)
		for s := range a.selectors(1, c).All() {
			require.NoError(t, s.Validate())
		}
		msg := errorMessage(data)
		require.NotEmpty(t, msg)
		require.LessOrEqual(t, len(msg), maxErrorMessage+len("..."))
	})
}
