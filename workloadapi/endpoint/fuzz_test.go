package endpoint

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// FuzzRequest feeds arbitrary request fields to FetchJWTSVID and
// ValidateJWTSVID: whatever a caller sends, the answer is a success or a
// status the caller caused (InvalidArgument, PermissionDenied), never a
// panic or an Internal error; a validated token names a SPIFFE ID.
func FuzzRequest(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/web")
	root := testca.New(f, td)
	chain, key := root.NewLeaf(f, id)
	jwtAuthority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(f)})
	require.NoError(f, err)
	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Cert()})
	require.NoError(f, bundle.AddJWTAuthority(jwtAuthority.KeyID(), jwtAuthority.PublicKey()))
	h := NewMemoryHandler(MemoryConfig{SignJWT: func(ctx context.Context, id spiffeid.ID, aud []string) (string, error) {
		return jwtAuthority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: aud})
	}})
	require.NoError(f, h.Set(strconv.Itoa(os.Getuid()), &Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{bundle},
	}))
	srv, err := New(Config{Handler: h})
	require.NoError(f, err)
	s := newService(context.Background(), srv)
	caller := Caller{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid()}
	log := slog.New(slog.DiscardHandler)
	token, err := jwtAuthority.SignJWTSVID(context.Background(), ca.JWTSVIDParams{ID: id, Audience: []string{"db"}})
	require.NoError(f, err)
	f.Add("db", token, "")
	f.Add("", "", "spiffe://example.org/web")
	f.Add("db", "a.b.c", "spiffe://example.org/../x")

	f.Fuzz(func(t *testing.T, audience, svid, spiffeID string) {
		ctx := context.Background()
		allowed := func(err error) {
			switch code := status.Code(grpcError(log, "fuzz", caller, err)); code {
			case codes.OK, codes.InvalidArgument, codes.PermissionDenied:
			default:
				t.Fatalf("code %v for %v", code, err)
			}
		}
		resp, err := s.fetchJWTSVID(ctx, caller, &workloadpb.JWTSVIDRequest{Audience: []string{audience}, SpiffeId: spiffeID})
		allowed(err)
		if err == nil {
			require.NotEmpty(t, resp.Svids)
		}
		vresp, err := s.validateJWTSVID(ctx, caller, &workloadpb.ValidateJWTSVIDRequest{Audience: audience, Svid: svid})
		allowed(err)
		if err == nil {
			_, err := spiffeid.FromString(vresp.SpiffeId)
			require.NoError(t, err)
		}
	})
}
