package wpt_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/exp/wpt"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// capture is a RoundTripper that records the requests it is given and, when
// forward is set, sends them on.
type capture struct {
	base    http.RoundTripper
	mu      sync.Mutex
	forward bool
	last    *http.Request
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.last = r
	forward := c.forward
	c.mu.Unlock()
	if forward {
		return c.base.RoundTrip(r)
	}
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody, Request: r}, nil
}

func (c *capture) lastHeaders() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.Header.Clone()
}

// send sends a request with exactly the given headers, as an attacker who
// copied them would.
func send(t *testing.T, client *http.Client, method, url string, h http.Header) *http.Response {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	r.Header = h
	resp, err := client.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestEndToEnd runs a client Transport reading its WIT-SVID from a real
// Workload API server and a server Middleware trusting the bundles of the
// same source, over TLS, and tries a replayed, stale, re-targeted and
// re-methoded proof.
func TestEndToEnd(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	d := newTrustDomain(t, "example.org")
	first := d.svid(t, "/client")
	source, set := workloadAPI(t, d, first)
	clk := newClock()

	var verifier *wpt.Verifier
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, ok := wpt.FromContext(r.Context())
			if !ok {
				http.Error(w, "no result", http.StatusInternalServerError)
				return
			}
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s %s %s", res.ID, res.Claims.Method, res.Claims.WITHash, res.Claims.TxnTokenHash, body)
		})).ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var err error
	verifier, err = wpt.NewVerifier(wpt.Config{
		Bundles: source, Origins: []string{srv.URL}, Now: clk.Now,
		Authorize: spiffeid.MatchMemberOf(d.td),
	})
	require.NoError(t, err)

	tap := &capture{base: srv.Client().Transport, forward: true}
	client := &http.Client{Transport: &wpt.Transport{Source: source, ID: first.ID, Base: tap}}
	t.Cleanup(client.CloseIdleConnections)
	raw := srv.Client()

	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	code, body := get("/hello?x=1")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, fmt.Sprintf("spiffe://example.org/client GET %s  ", wpt.Hash(first.Marshal())), body)

	// A POST with a body and a transaction token.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/items", strings.NewReader("payload"))
	require.NoError(t, err)
	req.Header.Set(wpt.TxnTokenHeader, "txn.token")
	resp, err := client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	assert.Equal(t, fmt.Sprintf("spiffe://example.org/client POST %s %s payload", wpt.Hash(first.Marshal()), wpt.Hash("txn.token")), string(b))

	// The POST's headers replayed as they were sent.
	replayed := tap.lastHeaders()
	resp = send(t, raw, http.MethodPost, srv.URL+"/items", replayed)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "replay")
	assert.Equal(t, "WPT", resp.Header.Get("WWW-Authenticate"))

	// Proofs made but never sent, used elsewhere than they were made for.
	tap.mu.Lock()
	tap.forward = false
	tap.mu.Unlock()
	code, _ = get("/hello")
	require.Equal(t, http.StatusTeapot, code)
	unsent := tap.lastHeaders()
	resp = send(t, raw, http.MethodGet, srv.URL+"/admin", unsent.Clone())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "re-targeted")
	resp = send(t, raw, http.MethodDelete, srv.URL+"/hello", unsent.Clone())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "another method")
	without := unsent.Clone()
	without.Del(wpt.WITHeader)
	resp = send(t, raw, http.MethodGet, srv.URL+"/hello", without)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "WIT removed")
	// The client's proofs use the real clock, the verifier clk, which
	// started at the last whole second: a minute past the proof's exp and
	// leeway, whenever within the next second the proof was made.
	const later = wpt.DefaultLifetime + wpt.DefaultLeeway + time.Minute
	clk.Add(later)
	resp = send(t, raw, http.MethodGet, srv.URL+"/hello", unsent.Clone())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "stale")
	clk.Add(-later)
	tap.mu.Lock()
	tap.forward = true
	tap.mu.Unlock()

	// A rotated WIT-SVID (new key) is used from the next request on.
	second := d.svid(t, "/client")
	set(second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		cur, err := source.GetWITSVIDForID(first.ID)
		if err == nil && cur.Marshal() == second.Marshal() {
			break
		}
		select {
		case <-source.Updated():
		case <-ctx.Done():
			t.Fatal("the source never saw the rotated WIT-SVID")
		}
	}
	code, body = get("/hello")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, wpt.Hash(second.Marshal()))
}

func TestMiddlewareRefusals(t *testing.T) {
	d := newTrustDomain(t, "example.org")
	other := newTrustDomain(t, "other.test")
	clk := newClock()
	newVerifier := func(mod func(*wpt.Config)) *wpt.Verifier {
		cfg := wpt.Config{Bundles: witbundle.NewSet(d.bundle()), Origins: []string{testOrigin}, Now: clk.Now}
		if mod != nil {
			mod(&cfg)
		}
		v, err := wpt.NewVerifier(cfg)
		require.NoError(t, err)
		return v
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mint := func(svid interface{}, path string) *http.Request {
		s := d.svid(t, path)
		if svid != nil {
			s = svid.(*trustDomain).svid(t, path)
		}
		token, err := wpt.Mint(s, wpt.MintParams{Audience: testTarget, Method: http.MethodGet, Now: clk.Now()})
		require.NoError(t, err)
		return request(s.Marshal(), "WPT "+token)
	}
	serve := func(v *wpt.Verifier, r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		v.Middleware(ok).ServeHTTP(rec, r)
		return rec
	}

	v := newVerifier(nil)
	assert.Equal(t, http.StatusNoContent, serve(v, mint(nil, "/a")).Code)
	rec := serve(v, httptest.NewRequest(http.MethodGet, testURL, nil))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, "WPT", rec.Header().Get("WWW-Authenticate"))
	assert.Equal(t, http.StatusBadRequest, serve(v, mint(other, "/a")).Code)

	v = newVerifier(func(c *wpt.Config) { c.Authorize = spiffeid.MatchID(d.id("/b")) })
	assert.Equal(t, http.StatusForbidden, serve(v, mint(nil, "/a")).Code)
	assert.Equal(t, http.StatusNoContent, serve(v, mint(nil, "/b")).Code)

	v = newVerifier(func(c *wpt.Config) { c.ReplayCacheSize = 1 })
	assert.Equal(t, http.StatusNoContent, serve(v, mint(nil, "/a")).Code)
	rec = serve(v, mint(nil, "/a"))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
}

// closeRecorder is a request body that records whether it was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestTransportRefuses(t *testing.T) {
	d := newTrustDomain(t, "example.org")
	svid := d.svid(t, "/client")
	source := staticSource{svid}
	tap := &capture{}
	for name, tc := range map[string]struct {
		tr  *wpt.Transport
		mod func(r *http.Request)
	}{
		"existing Authorization": {&wpt.Transport{Source: source, ID: svid.ID, Base: tap}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") }},
		"no source":              {&wpt.Transport{ID: svid.ID, Base: tap}, nil},
		"unknown ID":             {&wpt.Transport{Source: source, ID: d.id("/else"), Base: tap}, nil},
		"two Txn-Tokens": {&wpt.Transport{Source: source, ID: svid.ID, Base: tap}, func(r *http.Request) {
			r.Header.Add(wpt.TxnTokenHeader, "a")
			r.Header.Add(wpt.TxnTokenHeader, "b")
		}},
		"two context tokens": {&wpt.Transport{Source: source, ID: svid.ID, Base: tap, OtherTokenHeaders: []string{"X-User"}}, func(r *http.Request) {
			r.Header.Add("X-User", "a")
			r.Header.Add("X-User", "b")
		}},
		"lifetime negative": {&wpt.Transport{Source: source, ID: svid.ID, Base: tap, Lifetime: -1}, nil},
	} {
		body := &closeRecorder{Reader: strings.NewReader("x")}
		r, err := http.NewRequest(http.MethodPost, testURL, body)
		require.NoError(t, err)
		if tc.mod != nil {
			tc.mod(r)
		}
		_, err = tc.tr.RoundTrip(r)
		require.Error(t, err, name)
		assert.True(t, body.closed, name)
	}
	_, err := (&wpt.Transport{Source: source, ID: svid.ID}).RoundTrip(&http.Request{Header: http.Header{}})
	require.Error(t, err)
}

func TestTransportBindsRequest(t *testing.T) {
	d := newTrustDomain(t, "example.org")
	svid := d.svid(t, "/client")
	tap := &capture{}
	tr := &wpt.Transport{Source: staticSource{svid}, ID: svid.ID, Base: tap, OtherTokenHeaders: []string{"X-User"}, Lifetime: 5 * time.Second}
	r, err := http.NewRequest(http.MethodPut, "HTTPS://API.example.org:443/v1/things?page=2", nil)
	require.NoError(t, err)
	r.Header.Set(wpt.TxnTokenHeader, "txn")
	r.Header.Set("X-User", "user")
	_, err = tr.RoundTrip(r)
	require.NoError(t, err)
	assert.Empty(t, r.Header.Get("Authorization"), "the caller's request is not modified")
	sent := tap.lastHeaders()
	assert.Equal(t, svid.Marshal(), sent.Get(wpt.WITHeader))

	v, err := wpt.NewVerifier(wpt.Config{Bundles: witbundle.NewSet(d.bundle()), Origins: []string{testOrigin}, OtherTokenHeaders: []string{"x-user"}})
	require.NoError(t, err)
	in := httptest.NewRequest(http.MethodPut, testURL, nil)
	in.Header = sent
	res, err := v.Verify(in)
	require.NoError(t, err)
	assert.Equal(t, http.MethodPut, res.Claims.Method)
	assert.Equal(t, []string{testTarget}, res.Claims.Audience)
	assert.Equal(t, wpt.Hash("txn"), res.Claims.TxnTokenHash)
	assert.Equal(t, map[string]string{"x-user": wpt.Hash("user")}, res.Claims.OtherTokenHashes)
	assert.Equal(t, 5*time.Second, res.Claims.Expiry.Sub(res.Claims.IssuedAt))
}

// staticSource serves fixed WIT-SVIDs.
type staticSource []*witsvid.SVID

func (s staticSource) GetWITSVIDForID(id spiffeid.ID) (*witsvid.SVID, error) {
	for _, svid := range s {
		if svid.ID == id {
			return svid, nil
		}
	}
	return nil, fmt.Errorf("no WIT-SVID for %q", id)
}
