//go:build windows

package endpoint_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// The server on a named pipe learns each caller's process ID from
// Windows: a view keyed by this process's ID reaches it, over the client's
// "npipe:" address.
func TestServeNamedPipe(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: caKey, TrustDomain: td})
	require.NoError(t, err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := spiffeid.RequireFromPath(td, "/web")
	chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	require.NoError(t, err)

	var (
		mu   sync.Mutex
		seen []endpoint.Caller
	)
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{Key: func(c endpoint.Caller) string {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
		return strconv.Itoa(c.PID)
	}})
	require.NoError(t, handler.Set(strconv.Itoa(os.Getpid()), &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{spiffebundle.FromX509Authorities(td, authority.Chain())},
	}))
	name := fmt.Sprintf("spiffekit-endpoint-%d-%d", os.Getpid(), time.Now().UnixNano())
	lis, err := endpoint.ListenNamedPipe(name, "")
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()

	svid, err := workloadapi.FetchX509SVID(t.Context(), workloadapi.WithAddr("npipe:"+name))
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	mu.Lock()
	require.NotEmpty(t, seen)
	assert.Equal(t, os.Getpid(), seen[0].PID)
	assert.False(t, seen[0].HasCredentials(), "no uid or gid on a pipe")
	mu.Unlock()

	cancel()
	require.NoError(t, <-done)

	_, err = endpoint.ListenNamedPipe("../x", "")
	assert.ErrorContains(t, err, `must not have empty, "." or ".." elements`)
}
