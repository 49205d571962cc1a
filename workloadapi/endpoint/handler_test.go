package endpoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// errHandler fails the way a test asks, or serves a fixed snapshot.
type errHandler struct {
	subErr   error
	snap     *endpoint.Snapshot
	fetchErr error
	svids    []endpoint.JWTSVID
}

func (h *errHandler) Subscribe(context.Context, endpoint.Caller) (endpoint.Subscription, error) {
	if h.subErr != nil {
		return nil, h.subErr
	}
	return fixedSubscription{h.snap}, nil
}

func (h *errHandler) FetchJWTSVIDs(context.Context, endpoint.Caller, endpoint.JWTSVIDParams) ([]endpoint.JWTSVID, error) {
	return h.svids, h.fetchErr
}

type fixedSubscription struct{ snap *endpoint.Snapshot }

func (s fixedSubscription) Snapshot() *endpoint.Snapshot { return s.snap }
func (fixedSubscription) Changed() <-chan struct{}       { return nil }
func (fixedSubscription) Close()                         {}

func TestHandlerErrors(t *testing.T) {
	secret := errors.New("database password is hunter2")
	invalid := &endpoint.Snapshot{} // no trust domain
	for _, tt := range []struct {
		name    string
		h       *errHandler
		code    codes.Code
		leaks   bool // the message may reach the caller
		logged  bool
		methods []string
	}{
		{"unavailable", &errHandler{subErr: fmt.Errorf("%w: CA starting", endpoint.ErrUnavailable), fetchErr: endpoint.ErrUnavailable}, codes.Unavailable, false, true, nil},
		{"invalid request", &errHandler{subErr: fmt.Errorf("%w: no such thing", endpoint.ErrInvalidRequest), fetchErr: fmt.Errorf("%w: no such thing", endpoint.ErrInvalidRequest)}, codes.InvalidArgument, true, false, nil},
		{"internal error is not sent", &errHandler{subErr: secret, fetchErr: secret}, codes.Internal, false, true, nil},
		{"deadline", &errHandler{subErr: context.DeadlineExceeded, fetchErr: context.DeadlineExceeded}, codes.DeadlineExceeded, false, false, nil},
		{"invalid snapshot", &errHandler{snap: invalid}, codes.Internal, false, true,
			[]string{"FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles", "ValidateJWTSVID"}},
		{"nil snapshot", &errHandler{}, codes.PermissionDenied, false, false,
			[]string{"FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles", "ValidateJWTSVID"}},
		{"JWT-SVID without token", &errHandler{svids: []endpoint.JWTSVID{{ID: webID}}}, codes.Internal, false, true, []string{"FetchJWTSVID"}},
		{"no JWT-SVID", &errHandler{}, codes.PermissionDenied, false, false, []string{"FetchJWTSVID"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			client, _ := serve(t, endpoint.Config{
				Handler: tt.h,
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
				WIT:     true,
			})
			errs := callAll(withHeader(t.Context()), client)
			methods := tt.methods
			if methods == nil {
				methods = []string{"FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles", "FetchWITSVID", "FetchWITBundles", "FetchJWTSVID", "ValidateJWTSVID"}
			}
			for _, m := range methods {
				requireCode(t, tt.code, errs[m])
				assert.NotContains(t, errs[m].Error(), "hunter2", m)
				if tt.leaks {
					assert.Contains(t, errs[m].Error(), "no such thing", m)
				}
			}
			if tt.logged {
				assert.Contains(t, logs.String(), "uid=", "the log names the caller")
			}
			if tt.h.subErr == secret {
				assert.Contains(t, logs.String(), "hunter2", "details go to the log")
			}
		})
	}
}

func TestJWTSVIDOtherIdentityDropped(t *testing.T) {
	// A handler that returns an identity the caller did not ask for: the
	// server never passes it on.
	h := &errHandler{svids: []endpoint.JWTSVID{{ID: dbID, Token: "a.b.c"}}}
	client, _ := serve(t, endpoint.Config{Handler: h})
	_, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"x"}, SpiffeId: webID.String()})
	requireCode(t, codes.PermissionDenied, err)
}

func TestMemoryHandlerSignError(t *testing.T) {
	f := newFixture(t)
	h := endpoint.NewMemoryHandler(endpoint.MemoryConfig{
		Key: func(endpoint.Caller) string { return "all" },
		SignJWT: func(context.Context, spiffeid.ID, []string) (string, error) {
			return "", errors.New("signer offline")
		},
	})
	require.NoError(t, h.Set("all", f.snapshot(f.svid(t, webID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: h})
	_, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"x"}})
	requireCode(t, codes.Internal, err)

	// Without SignJWT, no JWT-SVIDs at all.
	h2 := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	require.NoError(t, h2.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	client, _ = serve(t, endpoint.Config{Handler: h2})
	_, err = client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"x"}})
	requireCode(t, codes.PermissionDenied, err)
}

// opaqueListener hides the socket of each accepted connection, so the
// server cannot ask the kernel who the peer is.
type opaqueListener struct{ net.Listener }

type opaqueConn struct{ net.Conn }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

func TestUnidentifiedCaller(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	dir := t.TempDir()
	lis, err := endpoint.ListenUnix(dir+"/s", 0o700)
	if err != nil {
		t.Skip("socket path too long:", err)
	}
	srv, err := endpoint.New(endpoint.Config{Handler: f.handler})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, opaqueListener{lis}) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	client := dial(t, "unix://"+dir+"/s")
	// E2: a unix caller that cannot be identified gets Unavailable.
	for m, err := range callAll(withHeader(t.Context()), client) {
		if m == "FetchWITSVID" || m == "FetchWITBundles" {
			requireCode(t, codes.Unimplemented, err)
			continue
		}
		requireCode(t, codes.Unavailable, err)
	}
}
