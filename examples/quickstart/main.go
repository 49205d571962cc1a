// Command quickstart runs a whole SPIFFE trust domain in one process: an
// embedded issuer (CA, SQLite registry, unix attestor, Workload API socket),
// two workloads that get their identities from it and talk over mTLS, and a
// CA rotation that reaches them while they run. It prints what happens and
// exits 0, or exits 1 with the reason.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		stop()
		os.Exit(1)
	}
}

var (
	td        = spiffeid.RequireTrustDomainFromString("example.org")
	billingID = spiffeid.RequireFromPath(td, "/billing")
	webID     = spiffeid.RequireFromPath(td, "/web")
)

// run tells the story on w; it returns the first failure.
func run(ctx context.Context, w io.Writer) error {
	start := time.Now()
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(w, "%d. [%4d ms] %s\n", step, time.Since(start).Milliseconds(), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The trust domain: CA, registry, attestor, issuer on a socket.
	ca, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(dir, "registry.db")})
	if err != nil {
		return err
	}
	defer store.Close()
	attestor, err := unix.New(unix.Config{SkipHash: true})
	if err != nil {
		return err
	}
	iss, err := issuer.New(ctx, issuer.Config{
		Trust:    issuer.TrustFromAuthority(ca),
		Signer:   issuer.NewLocalSigner(ca),
		Registry: store,
		Attestor: attestor,
	})
	if err != nil {
		return err
	}
	defer iss.Close()
	// The issuer keeps the SVIDs fresh while Run runs; package endpoint
	// serves it as the Workload API on a unix socket.
	srv, err := endpoint.New(endpoint.Config{Handler: iss})
	if err != nil {
		return err
	}
	api, err := endpoint.ListenUnix(filepath.Join(dir, "workload.sock"), 0o700)
	if err != nil {
		return err
	}
	addr := "unix://" + api.Addr().String()
	ctx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stop()
	bg.Go(func() {
		if err := iss.Run(ctx); err != nil {
			fmt.Fprintln(w, "issuer stopped:", err)
		}
	})
	bg.Go(func() {
		if err := srv.Serve(ctx, api); err != nil {
			fmt.Fprintln(w, "Workload API server stopped:", err)
		}
	})
	say("Issuer up for %s: SQLite registry, unix attestor, Workload API at %s, X.509 CA %s", td, addr, short(ca.X509CAs()[0].ID))

	// Both workloads run in this process, so both entries select on our uid;
	// each side picks its own SVID by hint.
	uid := attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	for _, e := range []registry.Entry{{SPIFFEID: billingID, Hint: "billing"}, {SPIFFEID: webID, Hint: "web"}} {
		e.ParentID, e.Selectors = spiffeid.RequireFromPath(td, "/issuer"), []attest.Selector{uid}
		if _, err := store.Create(ctx, e); err != nil {
			return err
		}
	}
	if err := iss.Sync(ctx); err != nil {
		return err
	}
	say("Registered %s (hint billing) and %s (hint web), both selecting %s", billingID, webID, uid)

	sources := map[string]*workloadapi.X509Source{}
	for _, hint := range []string{"billing", "web"} {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)),
			workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
				i := slices.IndexFunc(svids, func(s *x509svid.SVID) bool { return s.Hint == hint })
				return svids[max(i, 0)] // the issuer always sends both; else the default
			}))
		if err != nil {
			return err
		}
		defer src.Close()
		sources[hint] = src
	}
	billing, web := sources["billing"], sources["web"]
	old := svid(billing)
	say("Over the Workload API, each side picked its SVID by hint (WithDefaultX509SVIDPicker): billing %s, web %s",
		describe(old), describe(svid(web)))

	// billing serves mTLS and accepts only web; web dials and accepts only billing.
	lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(webID), billing))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer lis.Close()
	wg.Go(func() { serve(lis, &wg) })
	dial := func() (net.Conn, error) {
		return spiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(billingID), web))
	}
	first, err := dial()
	if err != nil {
		return err
	}
	defer first.Close()
	reply, err := exchange(first, "hello")
	if err != nil {
		return err
	}
	say("mTLS web -> billing: sent %q, got %q; billing presented serial %s", "hello", reply, serial(peerLeaf(first)))

	// Rotate: prepare a new X.509 CA (published in the bundle), then activate it.
	t0 := time.Now()
	next, err := ca.PrepareX509CA(ctx)
	if err != nil {
		return err
	}
	if err := ca.ActivateX509CA(ctx); err != nil {
		return err
	}
	say("CA rotation: prepared and activated X.509 CA %s (%d ms)", short(next.ID), time.Since(t0).Milliseconds())
	for _, s := range []*workloadapi.X509Source{billing, web} {
		for issuedBy(svid(s)) != next.ID {
			if err := s.WaitUntilUpdated(ctx); err != nil {
				return fmt.Errorf("waiting for the new SVID: %w", err)
			}
		}
	}
	renewed := svid(billing)
	say("The Workload API stream pushed billing's new SVID %d ms after the rotation: serial %s -> %s, issuer %s -> %s",
		time.Since(t0).Milliseconds(), serial(old.Certificates[0]), serial(renewed.Certificates[0]), short(issuedBy(old)), short(issuedBy(renewed)))

	second, err := dial()
	if err != nil {
		return err
	}
	defer second.Close()
	if reply, err = exchange(second, "hello again"); err != nil {
		return err
	}
	got := peerLeaf(second)
	if got.SerialNumber.Cmp(renewed.Certificates[0].SerialNumber) != 0 {
		return fmt.Errorf("the new handshake used serial %s, not the new SVID's", serial(got))
	}
	say("New handshake: billing presented the new SVID (serial %s); got %q", serial(got), reply)
	if reply, err = exchange(first, "still there?"); err != nil {
		return fmt.Errorf("the old connection broke: %w", err)
	}
	say("The old connection keeps working: got %q", reply)
	fmt.Fprintf(w, "Done in %d ms.\n", time.Since(start).Milliseconds())
	return nil
}

// serve answers each line a client sends until the listener closes.
func serve(lis net.Listener, wg *sync.WaitGroup) {
	for {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer conn.Close()
			peer, _ := spiffetls.PeerIDFromConn(conn)
			r := bufio.NewScanner(conn)
			for r.Scan() {
				fmt.Fprintf(conn, "billing to %s: %s\n", peer, r.Text())
			}
		})
	}
}

// exchange sends one line on conn and reads the answer.
func exchange(conn net.Conn, msg string) (string, error) {
	if _, err := fmt.Fprintln(conn, msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func svid(s *workloadapi.X509Source) *x509svid.SVID { v, _ := s.GetX509SVID(); return v }

func peerLeaf(conn net.Conn) *x509.Certificate {
	return conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().PeerCertificates[0]
}

// issuedBy returns the ID of the CA that signed s, as rotation names it.
func issuedBy(s *x509svid.SVID) string { return hex.EncodeToString(s.Certificates[0].AuthorityKeyId) }

func describe(s *x509svid.SVID) string {
	return fmt.Sprintf("%s (serial %s, CA %s)", s.ID, serial(s.Certificates[0]), short(issuedBy(s)))
}

func serial(c *x509.Certificate) string { return short(c.SerialNumber.Text(16)) }

// short abbreviates a hex string (at least 8 digits here) to its first 8.
func short(s string) string { return s[:min(len(s), 8)] + "…" }
