// Package scenario is one Workload API client program that exists twice:
// in directory gospiffe it imports go-spiffe v2.9.0, in directory spiffekit
// the same file imports spiffekit, and nothing else differs. A test in
// package interop checks that the two files are identical but for the
// import prefix and that both programs give the same transcript.
package scenario

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Run talks to the Workload API at addr and returns a transcript of what it
// observed. rotate must give the caller a new X509-SVID; Run waits for its
// X509Source to pick it up. The server must serve example.org/web (hint
// "internal") then example.org/db (hint "external"), bundles of example.org
// and federated.test, JWT-SVIDs for both IDs, and no WIT profile.
func Run(ctx context.Context, addr string, rotate func() error) ([]string, error) {
	var out []string
	logf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	fail := func(step string, err error) ([]string, error) {
		return out, fmt.Errorf("%s: %w", step, err)
	}
	web := spiffeid.RequireFromString("spiffe://example.org/web")
	db := spiffeid.RequireFromString("spiffe://example.org/db")

	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		return fail("new client", err)
	}
	defer client.Close()

	svid, err := client.FetchX509SVID(ctx)
	if err != nil {
		return fail("FetchX509SVID", err)
	}
	logf("FetchX509SVID: %s hint=%q chain=%d", svid.ID, svid.Hint, len(svid.Certificates))

	svids, err := client.FetchX509SVIDs(ctx)
	if err != nil {
		return fail("FetchX509SVIDs", err)
	}
	for _, s := range svids {
		logf("FetchX509SVIDs: %s hint=%q", s.ID, s.Hint)
	}

	x509Bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		return fail("FetchX509Bundles", err)
	}
	for _, b := range x509Bundles.Bundles() {
		logf("FetchX509Bundles: %s authorities=%d", b.TrustDomain(), len(b.X509Authorities()))
	}

	x509Ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		return fail("FetchX509Context", err)
	}
	logf("FetchX509Context: default=%s svids=%d bundles=%d", x509Ctx.DefaultSVID().ID, len(x509Ctx.SVIDs), x509Ctx.Bundles.Len())
	own, err := x509Ctx.Bundles.GetX509BundleForTrustDomain(web.TrustDomain())
	if err != nil {
		return fail("own bundle", err)
	}
	_, _, err = x509svid.Verify(x509Ctx.SVIDs[1].Certificates, own)
	logf("x509svid.Verify(db, own bundle): err=%v", err)

	jwtSVID, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", ExtraAudiences: []string{"cache"}, Subject: db})
	if err != nil {
		return fail("FetchJWTSVID", err)
	}
	logf("FetchJWTSVID: %s aud=%s hint=%q", jwtSVID.ID, strings.Join(jwtSVID.Audience, ","), jwtSVID.Hint)

	jwtSVIDs, err := client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "db"})
	if err != nil {
		return fail("FetchJWTSVIDs", err)
	}
	for _, s := range jwtSVIDs {
		logf("FetchJWTSVIDs: %s hint=%q", s.ID, s.Hint)
	}

	jwtBundles, err := client.FetchJWTBundles(ctx)
	if err != nil {
		return fail("FetchJWTBundles", err)
	}
	var tds []string
	for _, b := range jwtBundles.Bundles() {
		tds = append(tds, fmt.Sprintf("%s:%d", b.TrustDomain(), len(b.JWTAuthorities())))
	}
	sort.Strings(tds)
	logf("FetchJWTBundles: %s", strings.Join(tds, " "))
	parsed, err := jwtsvid.ParseAndValidate(jwtSVIDs[0].Marshal(), jwtBundles, []string{"db"})
	if err != nil {
		return fail("jwtsvid.ParseAndValidate", err)
	}
	logf("jwtsvid.ParseAndValidate: %s", parsed.ID)

	validated, err := client.ValidateJWTSVID(ctx, jwtSVIDs[0].Marshal(), "db")
	if err != nil {
		return fail("ValidateJWTSVID", err)
	}
	logf("ValidateJWTSVID: %s", validated.ID)
	_, err = client.ValidateJWTSVID(ctx, jwtSVIDs[0].Marshal(), "not-the-audience")
	logf("ValidateJWTSVID(wrong audience): code=%s", status.Code(err))

	_, err = client.FetchWITSVID(ctx, "")
	logf("FetchWITSVID(no WIT profile): code=%s", status.Code(err))
	_, err = client.FetchWITBundles(ctx)
	logf("FetchWITBundles(no WIT profile): code=%s", status.Code(err))

	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		return fail("NewX509Source", err)
	}
	defer source.Close()
	first, err := source.GetX509SVID()
	if err != nil {
		return fail("X509Source.GetX509SVID", err)
	}
	logf("X509Source: %s", first.ID)
	if err := rotate(); err != nil {
		return fail("rotate", err)
	}
	for {
		current, err := source.GetX509SVID()
		if err != nil {
			return fail("X509Source.GetX509SVID", err)
		}
		if !current.Certificates[0].Equal(first.Certificates[0]) {
			logf("X509Source after rotation: %s new leaf", current.ID)
			break
		}
		select {
		case <-source.Updated():
		case <-ctx.Done():
			return fail("waiting for rotation", ctx.Err())
		}
	}
	if err := source.Close(); err != nil {
		return fail("X509Source.Close", err)
	}
	_, err = source.GetX509SVID()
	logf("X509Source closed: error=%t", err != nil)
	return out, nil
}
