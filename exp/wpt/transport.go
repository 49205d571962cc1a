package wpt

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Transport is an http.RoundTripper that sends each request with the
// WIT-SVID of ID, read from Source at that moment, in the
// Workload-Identity-Token field, and a fresh WPT for the request in the
// Authorization field. Source is typically a workloadapi.WITSource, so that
// a rotated WIT-SVID is used from the next request on.
//
// The WPT binds the request's method and target URI, and the Txn-Token and
// OtherTokenHeaders fields the request carries. A request that already has
// an Authorization field is refused: a WPT request carries no other
// credentials there (draft-ietf-wimse-wpt-02 §2.2). Redirects get a proof
// of their own, as the client sends each one through RoundTrip.
//
// Its fields must not change once it is in use; it is then safe for
// concurrent use.
type Transport struct {
	// Source gives the WIT-SVID, with its private key. Required.
	Source witsvid.Source

	// ID names the WIT-SVID to present. Required.
	ID spiffeid.ID

	// Base sends the requests. Nil means http.DefaultTransport. The WIT-SVID
	// and the WPT are meant for TLS connections with the server
	// authenticated (§3.1.1).
	Base http.RoundTripper

	// Lifetime is each WPT's lifetime. Zero means DefaultLifetime.
	Lifetime time.Duration

	// OtherTokenHeaders names header fields carrying context tokens to bind
	// with oth when the request carries them, once each.
	OtherTokenHeaders []string
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper. It does not modify req; it sends
// a copy with the two fields added.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r2, err := t.prepare(req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip closes the body, even on errors
		}
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r2)
}

func (t *Transport) prepare(req *http.Request) (*http.Request, error) {
	if t.Source == nil {
		return nil, errors.New("wpt: Transport has no Source")
	}
	if req.URL == nil {
		return nil, errors.New("wpt: request has no URL")
	}
	if len(req.Header.Values("Authorization")) > 0 {
		return nil, errors.New("wpt: request already has an Authorization field, which the WPT takes")
	}
	svid, err := t.Source.GetWITSVIDForID(t.ID)
	if err != nil {
		return nil, fmt.Errorf("wpt: cannot get WIT-SVID: %w", err)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	p := MintParams{Audience: TargetURI(req.URL), Method: method, Lifetime: t.Lifetime}
	switch txn := req.Header.Values(TxnTokenHeader); len(txn) {
	case 0:
	case 1:
		p.TxnToken = txn[0]
	default:
		return nil, errors.New("wpt: request has more than one Txn-Token field")
	}
	for _, h := range t.OtherTokenHeaders {
		switch vals := req.Header.Values(h); len(vals) {
		case 0:
		case 1:
			if p.OtherTokens == nil {
				p.OtherTokens = make(map[string]string)
			}
			p.OtherTokens[h] = vals[0]
		default:
			return nil, fmt.Errorf("wpt: request has more than one %s field", h)
		}
	}
	token, err := Mint(svid, p)
	if err != nil {
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Header.Set(WITHeader, svid.Marshal())
	r2.Header.Set("Authorization", Scheme+" "+token)
	return r2, nil
}
