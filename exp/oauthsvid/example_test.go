package oauthsvid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/oauthsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Example runs a small authorization server whose token endpoint
// authenticates clients by JWT-SVID, and a client that gets its JWT-SVIDs
// from the Workload API (here an in-process server) and asks for a
// client_credentials token, first with the right audience, then with a
// wrong one.
func Example() {
	addr, jwtAuthority, stop := startJWTServer()
	defer stop()
	ctx := context.Background()

	// The authorization server trusts example.org's JWT keys, as it would
	// read them from the trust domain's bundle endpoint.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	bundle := jwtbundle.New(td)
	if err := bundle.AddJWTAuthority(jwtAuthority.KeyID(), jwtAuthority.PublicKey()); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	issuer := srv.URL
	v, err := oauthsvid.NewValidator(oauthsvid.Config{
		Issuer:     issuer,
		JWTBundles: bundle,
		Clients:    oauthsvid.Registry{"spiffe://example.org/billing": oauthsvid.MustParsePattern("spiffe://example.org/billing")},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, err := v.Authenticate(r)
		if err != nil {
			oauthsvid.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token-of-" + client.ClientID, "token_type": "Bearer", "expires_in": 300})
	})

	// The client.
	source, err := workloadapi.NewJWTSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		log.Fatal(err)
	}
	defer source.Close()
	client := &oauthsvid.Client{TokenURL: srv.URL + "/token", Audience: issuer, JWTSource: source, HTTPClient: srv.Client()}
	token, err := client.Token(ctx, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(token.TokenType, token.AccessToken, token.ExpiresIn)

	// An assertion for another audience is refused.
	client.Audience = srv.URL + "/token"
	_, err = client.Token(ctx, url.Values{"grant_type": {"client_credentials"}})
	if e, ok := errors.AsType[*oauthsvid.TokenError](err); ok {
		fmt.Println(e.StatusCode, e.Code)
	}
	// Output:
	// Bearer token-of-spiffe://example.org/billing 5m0s
	// 401 invalid_client
}

// startJWTServer runs an in-process CA and a Workload API server on a unix
// socket that gives this user's processes the identity
// spiffe://example.org/billing and JWT-SVIDs for it.
func startJWTServer() (addr string, jwtAuthority *ca.JWTAuthority, stop func()) {
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/billing")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	must(err)
	x509Authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	chain, err := x509Authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	must(err)
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	jwtAuthority, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: jwtKey})
	must(err)

	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
	must(bundle.AddJWTAuthority(jwtAuthority.KeyID(), jwtAuthority.PublicKey()))
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{
		SignJWT: func(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
			return jwtAuthority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience})
		},
	})
	must(handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{bundle},
	}))
	dir, err := os.MkdirTemp("", "oauth")
	must(err)
	path := filepath.Join(dir, "api.sock")
	lis, err := endpoint.ListenUnix(path, 0o700)
	must(err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler})
	must(err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return "unix://" + path, jwtAuthority, func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}
