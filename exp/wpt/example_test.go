package wpt_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/wpt"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Example authenticates an HTTP request with a WIT-SVID and a Workload
// Proof Token: the client's Transport and the server's Middleware both use a
// live WITSource from the Workload API (here an in-process server).
func Example() {
	addr, stop := startWITServer()
	defer stop()
	ctx := context.Background()

	source, err := workloadapi.NewWITSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		log.Fatal(err)
	}
	defer source.Close()

	// The server: one line around the handler.
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	verifier, err := wpt.NewVerifier(wpt.Config{Bundles: source, Origins: []string{srv.URL}})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, _ := wpt.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", res.ID)
	}))

	// The client: one line to build it.
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	client := &http.Client{Transport: &wpt.Transport{Source: source, ID: id, Base: srv.Client().Transport}}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL + "/greeting")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// The same request without a proof is refused.
	resp, err = srv.Client().Get(srv.URL + "/greeting")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	// Output:
	// 200 hello spiffe://example.org/web
	// 401 WPT
}

// startWITServer runs an in-process WIT authority and a Workload API server
// with the WIT-SVID profile on a unix socket, giving this user's processes
// the WIT-SVID of spiffe://example.org/web.
func startWITServer() (addr string, stop func()) {
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := spiffeid.RequireTrustDomainFromString("example.org")
	authorityKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	authority, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: authorityKey, TrustDomain: td})
	must(err)
	workloadKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	id := spiffeid.RequireFromPath(td, "/web")
	token, err := authority.SignWITSVID(ctx, ca.WITSVIDParams{ID: id, PublicKey: workloadKey.Public()})
	must(err)
	jwk, err := jose.JSONWebKey{Key: workloadKey}.MarshalJSON()
	must(err)

	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	must(handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: td,
		Bundles: []*spiffebundle.Bundle{spiffebundle.FromWITAuthorities(td,
			map[string]crypto.PublicKey{authority.KeyID(): authority.PublicKey()})},
		WITSVIDs: []endpoint.WITSVID{{ID: id, Token: token, Key: string(jwk)}},
	}))
	dir, err := os.MkdirTemp("", "wpt")
	must(err)
	path := filepath.Join(dir, "api.sock")
	lis, err := endpoint.ListenUnix(path, 0o700)
	must(err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler, WIT: true})
	must(err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return "unix://" + path, func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}
