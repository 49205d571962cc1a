package kit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The security header of WE rule 6.
const (
	headerKey   = "workload.spiffe.io"
	headerValue = "true"
)

// Defaults of WorkloadConfig.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultAudience = "spiffe-conformance"
)

// maxHint is the length past which WAPI rule 8 asks servers not to go.
const maxHint = 1024

// WorkloadConfig says which Workload API endpoint to check, and how.
type WorkloadConfig struct {
	// Addr is the endpoint: unix:///PATH or tcp://IP:PORT (WE rule 8), or
	// on Windows npipe:NAME, a named pipe as go-spiffe and SPIRE name it.
	Addr string
	// Audience is the audience of the JWT-SVIDs the kit asks for; empty
	// means DefaultAudience.
	Audience string
	// Timeout bounds every call, and the wait for a stream's first
	// message; zero means DefaultTimeout.
	Timeout time.Duration
	// RotationWait, when positive, keeps the X509-SVID stream open that
	// long after its first message to see the next one (a rotation), and
	// checks it as the first. Zero does not wait (WAPI rule 4b is then
	// not applicable).
	RotationWait time.Duration
	// UnregisteredAddr is a second address of the same endpoint through
	// which the kit is a caller entitled to nothing (WAPI rule 10b); empty
	// leaves that rule to CheckUnregistered run by another caller, or not
	// applicable.
	UnregisteredAddr string
}

func (c WorkloadConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c WorkloadConfig) audience() string {
	if c.Audience != "" {
		return c.Audience
	}
	return DefaultAudience
}

// CheckWorkloadAPI checks a live Workload API endpoint as a registered
// caller: the Workload Endpoint's rules, every RPC of the X.509 and JWT
// profiles, and the X509, bundle and JWT rules on everything it serves.
//
// It only reads: it calls the Fetch RPCs and ValidateJWTSVID, and never
// anything that could change the endpoint's state; it opens no other
// service. Every call is bounded by cfg.Timeout.
//
// It refuses to run, returning an error and no report, against an
// address it cannot read (WE rule 8) or an endpoint it cannot identify as
// a Workload API: one that does not answer FetchX509Bundles or
// FetchX509SVID, with the security header, by a message or by
// PermissionDenied within the timeout.
func CheckWorkloadAPI(ctx context.Context, cfg WorkloadConfig) (*Report, error) {
	addr, err := parseEndpointAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	conn, err := addr.newClient(cfg.Addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	w := &workloadCheck{cfg: cfg, client: workload.NewSpiffeWorkloadAPIClient(conn), r: NewReport(ModeWorkload, cfg.Addr)}
	if err := w.identify(ctx); err != nil {
		return nil, err
	}
	w.checkTransport(addr)
	w.checkHeader(ctx)
	w.checkX509SVID(ctx)
	w.checkX509Bundles(ctx)
	w.checkJWTBundles(ctx)
	w.checkJWTSVID(ctx)
	w.checkValidate(ctx)
	w.checkWIT(ctx)
	if cfg.UnregisteredAddr == "" {
		w.r.na("WAPI rule 10b", "unregistered caller", "not told how to call as a caller entitled to nothing (a second socket, or another uid)")
	} else {
		other, err := CheckUnregistered(ctx, WorkloadConfig{Addr: cfg.UnregisteredAddr, Timeout: cfg.Timeout, Audience: cfg.Audience})
		if err != nil {
			return nil, err
		}
		w.r.Merge(other)
	}
	w.r.Finish()
	return w.r, nil
}

// CheckUnregistered checks WAPI rule 10b from a caller entitled to no
// identity: FetchX509SVID and FetchJWTSVID (and FetchWITSVID, when the WIT
// profile is offered) must refuse it with PermissionDenied. Run it from such a caller (another uid, another
// socket); CheckWorkloadAPI runs it itself when given UnregisteredAddr.
func CheckUnregistered(ctx context.Context, cfg WorkloadConfig) (*Report, error) {
	addr, err := parseEndpointAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	conn, err := addr.newClient(cfg.Addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	w := &workloadCheck{cfg: cfg, client: workload.NewSpiffeWorkloadAPIClient(conn), r: NewReport(ModeWorkload, cfg.Addr)}
	_, err = w.firstX509SVID(ctx, withHeader)
	w.r.add("WAPI rule 10b", "unregistered caller FetchX509SVID", status.Code(err) == codes.PermissionDenied, "%s", describe(err))
	cctx, cancel := context.WithTimeout(w.header(ctx), w.cfg.timeout())
	defer cancel()
	_, err = w.client.FetchJWTSVID(cctx, &workload.JWTSVIDRequest{Audience: []string{cfg.audience()}})
	w.r.add("WAPI rule 10b", "unregistered caller FetchJWTSVID", status.Code(err) == codes.PermissionDenied, "%s", describe(err))
	_, err = firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.WITSVIDResponse], error) {
		return w.client.FetchWITSVID(w.header(sctx), &workload.WITSVIDRequest{})
	})
	if status.Code(err) == codes.Unimplemented {
		w.r.na("WAPI rule 10b", "unregistered caller FetchWITSVID", "the WIT profile is absent: %s", describe(err))
	} else {
		w.r.add("WAPI rule 10b", "unregistered caller FetchWITSVID", status.Code(err) == codes.PermissionDenied, "%s", describe(err))
	}
	w.r.Finish()
	return w.r, nil
}

// workloadCheck is one run of CheckWorkloadAPI.
type workloadCheck struct {
	cfg    WorkloadConfig
	client workload.SpiffeWorkloadAPIClient
	r      *Report

	ownTD    string                         // the trust domain of the default X509-SVID
	jwtKeys  map[string][]jose.JSONWebKey   // from FetchJWTBundles
	x509     map[string][]*x509.Certificate // from FetchX509Bundles
	tokens   []*workload.JWTSVID            // from FetchJWTSVID
	tokensOK bool                           // the first token passed the JWT rules
}

// header returns ctx carrying the security header.
func (w *workloadCheck) header(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, headerKey, headerValue)
}

// identify refuses an endpoint that does not speak the Workload API.
func (w *workloadCheck) identify(ctx context.Context) error {
	_, errB := firstMessage(ctx, w.cfg.timeout(), func(ctx context.Context) (grpc.ServerStreamingClient[workload.X509BundlesResponse], error) {
		return w.client.FetchX509Bundles(w.header(ctx), &workload.X509BundlesRequest{})
	})
	if errB == nil || status.Code(errB) == codes.PermissionDenied {
		return nil
	}
	_, errS := w.firstX509SVID(ctx, withHeader)
	if errS == nil || status.Code(errS) == codes.PermissionDenied {
		return nil
	}
	return fmt.Errorf("kit: %s: cannot identify a Workload API endpoint there (FetchX509Bundles: %s; FetchX509SVID: %s): refusing to check it", w.cfg.Addr, describe(errB), describe(errS))
}

// checkTransport checks WE rules 2 and 4.
func (w *workloadCheck) checkTransport(addr endpointAddr) {
	switch {
	case addr.network == "unix":
		w.r.na("WE rule 2", "address", "a unix socket")
	case addr.network == "npipe":
		w.r.na("WE rule 2", "address", "a Windows named pipe (go-spiffe's and SPIRE's, beside WE rule 8's unix and tcp)")
	case addr.ip.IsLoopback() || addr.ip.IsLinkLocalUnicast():
		w.r.add("WE rule 2", "address", true, "TCP on %s", addr.ip)
	default:
		w.r.na("WE rule 2", "address", "TCP on %s: only a network that authenticates callers by address allows it, which the kit cannot see", addr.ip)
	}
	w.r.add("WE rule 4", "connection", true, "served over plaintext gRPC, without client credentials")
}

// checkHeader checks WE rule 6 on every RPC: without the header, and with
// a value other than "true".
func (w *workloadCheck) checkHeader(ctx context.Context) {
	for _, variant := range []struct {
		name string
		md   []string
	}{
		{"without the security header", nil},
		{`with workload.spiffe.io: TRUE`, []string{headerKey, "TRUE"}},
	} {
		var md metadata.MD
		if variant.md != nil {
			md = metadata.Pairs(variant.md...)
		}
		ctxFor := func(ctx context.Context) context.Context { return metadata.NewOutgoingContext(ctx, md) }
		record := func(rpc string, err error) {
			w.r.add("WE rule 6", rpc+" "+variant.name, status.Code(err) == codes.InvalidArgument, "%s", describe(err))
		}
		_, err := w.firstX509SVID(ctx, md)
		record("FetchX509SVID", err)
		_, err = firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.X509BundlesResponse], error) {
			return w.client.FetchX509Bundles(ctxFor(sctx), &workload.X509BundlesRequest{})
		})
		record("FetchX509Bundles", err)
		_, err = firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.JWTBundlesResponse], error) {
			return w.client.FetchJWTBundles(ctxFor(sctx), &workload.JWTBundlesRequest{})
		})
		record("FetchJWTBundles", err)
		cctx, cancel := context.WithTimeout(ctxFor(ctx), w.cfg.timeout())
		_, err = w.client.FetchJWTSVID(cctx, &workload.JWTSVIDRequest{Audience: []string{w.cfg.audience()}})
		record("FetchJWTSVID", err)
		_, err = w.client.ValidateJWTSVID(cctx, &workload.ValidateJWTSVIDRequest{Audience: w.cfg.audience(), Svid: "a.b.c"})
		record("ValidateJWTSVID", err)
		cancel()
	}
}

// firstX509SVID opens FetchX509SVID with the metadata md (the security
// header, or not) and returns its first message.
func (w *workloadCheck) firstX509SVID(ctx context.Context, md metadata.MD) (*workload.X509SVIDResponse, error) {
	return firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.X509SVIDResponse], error) {
		return w.client.FetchX509SVID(metadata.NewOutgoingContext(sctx, md), &workload.X509SVIDRequest{})
	})
}

// withHeader is the metadata of a request that carries the security
// header.
var withHeader = metadata.Pairs(headerKey, headerValue)

// firstMessage opens a stream and returns its first message, waiting at
// most timeout; the stream is closed before it returns.
func firstMessage[T any](ctx context.Context, timeout time.Duration, open func(context.Context) (grpc.ServerStreamingClient[T], error)) (*T, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stream, err := open(sctx)
	if err != nil {
		return nil, err
	}
	return stream.Recv()
}

// checkX509SVID checks FetchX509SVID: the first message at once, its
// contents, and with RotationWait the next message.
func (w *workloadCheck) checkX509SVID(ctx context.Context) {
	sctx, cancel := context.WithTimeout(w.header(ctx), w.cfg.timeout()+w.cfg.RotationWait)
	defer cancel()
	stream, err := w.client.FetchX509SVID(sctx, &workload.X509SVIDRequest{})
	var first *workload.X509SVIDResponse
	if err == nil {
		first, err = recvWithin(stream, w.cfg.timeout())
	}
	if err != nil {
		w.r.add("WAPI rule 1", "FetchX509SVID", status.Code(err) != codes.Unimplemented, "%s", describe(err))
		w.r.add("WAPI rule 4a", "FetchX509SVID", false, "no first message within %s: %s", w.cfg.timeout(), describe(err))
		w.r.add("WAPI rule 10a", "FetchX509SVID", false, "%s", describe(err))
		w.r.na("WAPI rule 4b", "FetchX509SVID", "no first message")
		return
	}
	w.r.add("WAPI rule 1", "FetchX509SVID", true, "the X.509 profile is served")
	w.r.add("WAPI rule 4a", "FetchX509SVID", true, "first message within %s", w.cfg.timeout())
	leaf := w.checkX509SVIDResponse("FetchX509SVID", first)
	if w.cfg.RotationWait <= 0 {
		w.r.na("WAPI rule 4b", "FetchX509SVID", "no rotation wait given")
		return
	}
	start := time.Now()
	next, err := recvWithin(stream, w.cfg.RotationWait)
	switch {
	case err == nil:
		after := time.Since(start).Round(time.Millisecond)
		w.r.add("WAPI rule 4a", "FetchX509SVID update", len(next.GetSvids()) > 0, "the update holds %d SVIDs (a complete state, not a delta)", len(next.GetSvids()))
		nextLeaf := w.checkX509SVIDResponse("FetchX509SVID update", next)
		rotated := leaf != nil && nextLeaf != nil && leaf.SerialNumber.Cmp(nextLeaf.SerialNumber) != 0
		w.r.add("WAPI rule 4b", "FetchX509SVID", true, "a second message %s after the first; the default SVID rotated: %v", after, rotated)
	case leaf != nil && time.Now().After(leaf.NotAfter):
		w.r.add("WAPI rule 4b", "FetchX509SVID", false, "no new message in %s though the SVID expired at %s", w.cfg.RotationWait, leaf.NotAfter.Format(time.RFC3339))
	default:
		w.r.na("WAPI rule 4b", "FetchX509SVID", "no new message in %s (%s), and the SVID did not expire meanwhile", w.cfg.RotationWait, describe(err))
	}
}

// recvWithin returns the stream's next message, or an error after d.
func recvWithin[T any](stream grpc.ServerStreamingClient[T], d time.Duration) (*T, error) {
	type result struct {
		msg *T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := stream.Recv()
		ch <- result{msg, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case res := <-ch:
		return res.msg, res.err
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no message within %s", d)
	}
}

// checkX509SVIDResponse checks one FetchX509SVID message (WAPI rules 8 and
// 10a, and the X509 rules on each SVID) and returns the default SVID's
// leaf.
func (w *workloadCheck) checkX509SVIDResponse(rpc string, resp *workload.X509SVIDResponse) *x509.Certificate {
	svids := resp.GetSvids()
	if len(svids) == 0 {
		w.r.add("WAPI rule 10a", rpc, false, "no SVID in the response")
		return nil
	}
	w.checkHints(rpc, func(yield func(string) bool) {
		for _, s := range svids {
			if !yield(s.GetHint()) {
				return
			}
		}
	})
	var defaultLeaf *x509.Certificate
	for i, s := range svids {
		subject := fmt.Sprintf("%s svids[%d]", rpc, i)
		var missing []string
		for name, empty := range map[string]bool{"spiffe_id": s.GetSpiffeId() == "", "x509_svid": len(s.GetX509Svid()) == 0, "x509_svid_key": len(s.GetX509SvidKey()) == 0, "bundle": len(s.GetBundle()) == 0} {
			if empty {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			w.r.add("WAPI rule 10a", subject, false, "mandatory fields empty: %v", missing)
			continue
		}
		chain, err := x509.ParseCertificates(s.GetX509Svid())
		if err != nil {
			w.r.add("X509 rule 15", subject, false, "x509_svid is not concatenated DER certificates: %v", err)
			continue
		}
		roots, err := x509.ParseCertificates(s.GetBundle())
		if err != nil {
			w.r.add("WAPI rule 10a", subject, false, "bundle is not concatenated DER certificates: %v", err)
			continue
		}
		id, _ := spiffeid.FromString(s.GetSpiffeId())
		bundles := map[string][]*x509.Certificate{}
		if !id.IsZero() {
			bundles[id.TrustDomain().Name()] = roots
		}
		leafID := w.r.CheckX509SVID(X509SVID{Chain: chain, Key: s.GetX509SvidKey(), Bundles: bundles, Name: subject}, time.Now())
		w.r.add("WAPI rule 10a", subject, !leafID.IsZero() && leafID.String() == s.GetSpiffeId(),
			"spiffe_id %q, leaf URI SAN %q, all mandatory fields set", s.GetSpiffeId(), leafID.String())
		if i == 0 {
			defaultLeaf = chain[0]
			if !leafID.IsZero() && w.ownTD == "" {
				w.ownTD = leafID.TrustDomain().Name()
			}
			if rpc == "FetchX509SVID" {
				w.r.CheckX509Authorities(subject+" bundle", roots)
			}
		}
	}
	for key, der := range resp.GetFederatedBundles() {
		subject := rpc + " federated_bundles[" + key + "]"
		td, err := spiffeid.TrustDomainFromString(key)
		roots, derr := x509.ParseCertificates(der)
		w.r.add("WAPI rule 10a", subject, err == nil && strings.HasPrefix(key, "spiffe://") && derr == nil && len(roots) > 0,
			"key %q (trust domain %s), %d DER certificates (%v)", key, td, len(roots), derr)
	}
	return defaultLeaf
}

// checkHints checks WAPI rule 8 over the hints of one response.
func (w *workloadCheck) checkHints(rpc string, hints func(func(string) bool)) {
	seen := map[string]bool{}
	ok, long := true, false
	var all []string
	for h := range hints {
		all = append(all, h)
		if h == "" {
			continue
		}
		if seen[h] {
			ok = false
		}
		seen[h] = true
		long = long || len(h) > maxHint
	}
	w.r.add("WAPI rule 8", rpc, ok && !long, "hints %q", all)
}

// checkX509Bundles checks FetchX509Bundles (WAPI rule 11).
func (w *workloadCheck) checkX509Bundles(ctx context.Context) {
	resp, err := firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.X509BundlesResponse], error) {
		return w.client.FetchX509Bundles(w.header(sctx), &workload.X509BundlesRequest{})
	})
	if err != nil {
		w.r.add("WAPI rule 11", "FetchX509Bundles", false, "%s", describe(err))
		return
	}
	w.x509 = map[string][]*x509.Certificate{}
	for _, key := range sortedKeys(resp.GetBundles()) {
		subject := "FetchX509Bundles bundles[" + key + "]"
		td, err := spiffeid.TrustDomainFromString(key)
		if err != nil || !strings.HasPrefix(key, "spiffe://") || td.IDString() != key {
			w.r.add("WAPI rule 11", subject, false, "key %q is not a trust domain's SPIFFE ID (spiffe://<td>)", key)
			continue
		}
		roots, err := x509.ParseCertificates(resp.GetBundles()[key])
		if err != nil || len(roots) == 0 {
			w.r.add("WAPI rule 11", subject, false, "%d DER certificates: %v", len(roots), err)
			continue
		}
		w.r.add("WAPI rule 11", subject, true, "%d CA certificates", len(roots))
		w.x509[td.Name()] = roots
		w.r.CheckX509Authorities(subject, roots)
	}
	w.checkOwn("WAPI rule 11", "FetchX509Bundles", len(w.x509), func(td string) bool { return w.x509[td] != nil })
}

// checkOwn checks that a bundles map holds the endpoint's own trust
// domain (that of its default X509-SVID).
func (w *workloadCheck) checkOwn(rule, rpc string, n int, has func(string) bool) {
	if w.ownTD == "" {
		w.r.add(rule, rpc, n > 0, "%d trust domains; the endpoint's own is unknown (no X509-SVID)", n)
		return
	}
	w.r.add(rule, rpc, has(w.ownTD), "%d trust domains, the endpoint's own %q among them: %v", n, w.ownTD, has(w.ownTD))
}

// checkJWTBundles checks FetchJWTBundles (WAPI rule 13, Bundle rules 12,
// 14 and 16 on each key).
func (w *workloadCheck) checkJWTBundles(ctx context.Context) {
	resp, err := firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.JWTBundlesResponse], error) {
		return w.client.FetchJWTBundles(w.header(sctx), &workload.JWTBundlesRequest{})
	})
	if err != nil {
		w.r.add("WAPI rule 13", "FetchJWTBundles", false, "%s", describe(err))
		return
	}
	w.jwtKeys = map[string][]jose.JSONWebKey{}
	for _, key := range sortedKeys(resp.GetBundles()) {
		subject := "FetchJWTBundles bundles[" + key + "]"
		td, err := spiffeid.TrustDomainFromString(key)
		if err != nil || !strings.HasPrefix(key, "spiffe://") || td.IDString() != key {
			w.r.add("WAPI rule 13", subject, false, "key %q is not a trust domain's SPIFFE ID (spiffe://<td>)", key)
			continue
		}
		w.jwtKeys[td.Name()] = w.r.CheckJWTKeySet(subject, resp.GetBundles()[key])
	}
	w.checkOwn("WAPI rule 13", "FetchJWTBundles", len(w.jwtKeys), func(td string) bool { _, ok := w.jwtKeys[td]; return ok })
}

// checkJWTSVID checks FetchJWTSVID (WAPI rules 6, 8 and 12, and the JWT
// rules on each token).
func (w *workloadCheck) checkJWTSVID(ctx context.Context) {
	cctx, cancel := context.WithTimeout(w.header(ctx), w.cfg.timeout())
	defer cancel()
	_, err := w.client.FetchJWTSVID(cctx, &workload.JWTSVIDRequest{})
	w.r.add("WAPI rule 6", "FetchJWTSVID without audience", status.Code(err) == codes.InvalidArgument, "%s", describe(err))

	aud := w.cfg.audience()
	resp, err := w.client.FetchJWTSVID(cctx, &workload.JWTSVIDRequest{Audience: []string{aud}})
	if err != nil {
		w.r.add("WAPI rule 1", "FetchJWTSVID", status.Code(err) != codes.Unimplemented, "%s", describe(err))
		w.r.add("WAPI rule 12", "FetchJWTSVID", false, "%s", describe(err))
		return
	}
	w.r.add("WAPI rule 1", "FetchJWTSVID", true, "the JWT profile is served")
	svids := resp.GetSvids()
	if len(svids) == 0 {
		w.r.add("WAPI rule 12", "FetchJWTSVID", false, "no SVID in the response")
		return
	}
	w.checkHints("FetchJWTSVID", func(yield func(string) bool) {
		for _, s := range svids {
			if !yield(s.GetHint()) {
				return
			}
		}
	})
	for i, s := range svids {
		subject := fmt.Sprintf("FetchJWTSVID svids[%d]", i)
		if s.GetSpiffeId() == "" || s.GetSvid() == "" {
			w.r.add("WAPI rule 12", subject, false, "spiffe_id %q, svid of %d bytes: a mandatory field is empty", s.GetSpiffeId(), len(s.GetSvid()))
			continue
		}
		before := len(w.r.FailedRules())
		claims := w.r.CheckJWTSVID(JWTSVID{Token: s.GetSvid(), Keys: w.jwtKeys, Audience: aud, Name: subject}, time.Now())
		if i == 0 {
			w.tokensOK = claims != nil && len(w.r.FailedRules()) == before
		}
		sub, _ := claims["sub"].(string)
		w.r.add("WAPI rule 12", subject, sub == s.GetSpiffeId() && len(audiences(claims["aud"])) > 0,
			"spiffe_id %q, sub %q, aud %q", s.GetSpiffeId(), sub, audiences(claims["aud"]))
		w.tokens = append(w.tokens, s)
	}
}

// checkValidate checks ValidateJWTSVID (WAPI rules 6 and 14).
func (w *workloadCheck) checkValidate(ctx context.Context) {
	cctx, cancel := context.WithTimeout(w.header(ctx), w.cfg.timeout())
	defer cancel()
	aud := w.cfg.audience()
	_, err := w.client.ValidateJWTSVID(cctx, &workload.ValidateJWTSVIDRequest{Svid: "a.b.c"})
	w.r.add("WAPI rule 6", "ValidateJWTSVID without audience", status.Code(err) == codes.InvalidArgument, "%s", describe(err))
	_, err = w.client.ValidateJWTSVID(cctx, &workload.ValidateJWTSVIDRequest{Audience: aud})
	w.r.add("WAPI rule 6", "ValidateJWTSVID without svid", status.Code(err) == codes.InvalidArgument, "%s", describe(err))

	switch {
	case len(w.tokens) == 0:
		w.r.na("WAPI rule 14", "ValidateJWTSVID", "no JWT-SVID was served to validate")
		return
	case !w.tokensOK:
		w.r.na("WAPI rule 14", "ValidateJWTSVID", "the served JWT-SVID breaks the JWT rules (above): whether it should be accepted is moot")
	default:
		token := w.tokens[0]
		resp, err := w.client.ValidateJWTSVID(cctx, &workload.ValidateJWTSVIDRequest{Audience: aud, Svid: token.GetSvid()})
		if err != nil {
			w.r.add("WAPI rule 14", "ValidateJWTSVID of a served token", false, "%s", describe(err))
		} else {
			fields := resp.GetClaims().GetFields()
			var missing []string
			for _, c := range []string{"sub", "aud", "exp"} {
				if _, ok := fields[c]; !ok {
					missing = append(missing, c)
				}
			}
			sub := fields["sub"].GetStringValue()
			w.r.add("WAPI rule 14", "ValidateJWTSVID of a served token", resp.GetSpiffeId() == token.GetSpiffeId() && sub == token.GetSpiffeId() && len(missing) == 0,
				"spiffe_id %q, claims.sub %q, claims missing %v", resp.GetSpiffeId(), sub, missing)
		}
	}
	tampered := tamper(w.tokens[0].GetSvid())
	_, err = w.client.ValidateJWTSVID(cctx, &workload.ValidateJWTSVIDRequest{Audience: aud, Svid: tampered})
	w.r.add("WAPI rule 14", "ValidateJWTSVID of a token with an altered signature", err != nil, "%s", describe(err))
}

// tamper changes one byte of a compact JWS's signature.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || i+1 >= len(token) {
		return token + "x"
	}
	b := []byte(token)
	mid := i + 1 + (len(token)-i-1)/2
	if b[mid] == 'A' {
		b[mid] = 'B'
	} else {
		b[mid] = 'A'
	}
	return string(b)
}

// checkWIT checks the optional WIT profile: served, or Unimplemented
// (WAPI rule 1); when served, the security header on its RPCs (WE rule 6),
// FetchWITBundles (WIT rules 16a and 17b) and FetchWITSVID (WAPI rule 8,
// WIT rules 17a and 17c, and the WIT rules on every WIT-SVID, verified
// with the WIT bundles).
func (w *workloadCheck) checkWIT(ctx context.Context) {
	resp, err := firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.WITSVIDResponse], error) {
		return w.client.FetchWITSVID(w.header(sctx), &workload.WITSVIDRequest{})
	})
	bundles, errB := firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.WITBundlesResponse], error) {
		return w.client.FetchWITBundles(w.header(sctx), &workload.WITBundlesRequest{})
	})
	served := true
	switch code := status.Code(err); code {
	case codes.OK:
		w.r.add("WAPI rule 1", "FetchWITSVID", true, "the WIT profile is served")
	case codes.Unimplemented:
		served = false
		w.r.add("WAPI rule 1", "FetchWITSVID", true, "the WIT profile is absent: Unimplemented")
	case codes.PermissionDenied:
		w.r.add("WAPI rule 1", "FetchWITSVID", true, "the WIT profile is served; this caller is entitled to no WIT-SVID")
	default:
		w.r.add("WAPI rule 1", "FetchWITSVID", false, "neither served nor Unimplemented: %s", describe(err))
		return
	}
	if !served {
		w.r.add("WAPI rule 1", "FetchWITBundles", status.Code(errB) == codes.Unimplemented, "FetchWITSVID is Unimplemented; FetchWITBundles: %s", describe(errB))
		return
	}
	w.checkWITHeader(ctx)
	keys := w.checkWITBundles(bundles, errB)
	if resp == nil {
		w.r.na("WIT rule 17a", "FetchWITSVID", "%s", describe(err))
		return
	}
	w.checkWITSVIDs(resp, keys)
}

// checkWITHeader checks WE rule 6 on the WIT profile's RPCs.
func (w *workloadCheck) checkWITHeader(ctx context.Context) {
	_, err := firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.WITSVIDResponse], error) {
		return w.client.FetchWITSVID(sctx, &workload.WITSVIDRequest{})
	})
	w.r.add("WE rule 6", "FetchWITSVID without the security header", status.Code(err) == codes.InvalidArgument, "%s", describe(err))
	_, err = firstMessage(ctx, w.cfg.timeout(), func(sctx context.Context) (grpc.ServerStreamingClient[workload.WITBundlesResponse], error) {
		return w.client.FetchWITBundles(sctx, &workload.WITBundlesRequest{})
	})
	w.r.add("WE rule 6", "FetchWITBundles without the security header", status.Code(err) == codes.InvalidArgument, "%s", describe(err))
}

// checkWITBundles checks FetchWITBundles' first message (or its error)
// and returns the WIT-SVID keys by trust domain name.
func (w *workloadCheck) checkWITBundles(resp *workload.WITBundlesResponse, err error) map[string][]jose.JSONWebKey {
	if err != nil {
		w.r.add("WIT rule 17b", "FetchWITBundles", false, "FetchWITSVID is served, FetchWITBundles answers %s", describe(err))
		return nil
	}
	keys := map[string][]jose.JSONWebKey{}
	for _, key := range sortedKeys(resp.GetBundles()) {
		subject := "FetchWITBundles bundles[" + key + "]"
		td, err := spiffeid.TrustDomainFromString(key)
		if err != nil || !strings.HasPrefix(key, "spiffe://") || td.IDString() != key {
			w.r.add("WIT rule 17b", subject, false, "key %q is not a trust domain's SPIFFE ID (spiffe://<td>)", key)
			continue
		}
		keys[td.Name()] = w.r.CheckWITKeySet(subject, []byte(resp.GetBundles()[key]))
	}
	w.checkOwn("WIT rule 17b", "FetchWITBundles", len(keys), func(td string) bool { _, ok := keys[td]; return ok })
	return keys
}

// checkWITSVIDs checks one FetchWITSVID message.
func (w *workloadCheck) checkWITSVIDs(resp *workload.WITSVIDResponse, keys map[string][]jose.JSONWebKey) {
	svids := resp.GetSvids()
	if len(svids) == 0 {
		w.r.add("WIT rule 17a", "FetchWITSVID", false, "no SVID in the response")
		return
	}
	w.checkHints("FetchWITSVID", func(yield func(string) bool) {
		for _, s := range svids {
			if !yield(s.GetHint()) {
				return
			}
		}
	})
	for i, s := range svids {
		subject := fmt.Sprintf("FetchWITSVID svids[%d]", i)
		if s.GetSpiffeId() == "" || s.GetWitSvid() == "" || s.GetWitSvidKey() == "" {
			w.r.add("WIT rule 17a", subject, false, "spiffe_id %q, wit_svid of %d bytes, wit_svid_key of %d bytes: a mandatory field is empty",
				s.GetSpiffeId(), len(s.GetWitSvid()), len(s.GetWitSvidKey()))
			continue
		}
		claims := w.r.CheckWITSVID(WITSVID{Token: s.GetWitSvid(), Key: s.GetWitSvidKey(), Keys: keys, Name: subject}, time.Now())
		sub, _ := claims["sub"].(string)
		w.r.add("WIT rule 17a", subject, claims != nil && sub == s.GetSpiffeId(), "spiffe_id %q, sub %q", s.GetSpiffeId(), sub)
	}
}

// describe names a call's outcome for evidence.
func describe(err error) string {
	if err == nil {
		return "answered (no error)"
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
