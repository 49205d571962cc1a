package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// DefaultTimeout bounds the api and healthcheck commands.
const DefaultTimeout = 5 * time.Second

// clientFlags are the flags every Workload API client command takes.
type clientFlags struct {
	socket  string
	timeout time.Duration
	output  string
	// json is -output json.
	json bool
}

// declare declares the flags. Without -socket (or SPIRE's -socketPath),
// the socket is the address in SPIFFE_ENDPOINT_SOCKET, the variable every
// Workload API client reads, else the socket of run's own variable,
// SPIFFE_AGENT_SOCKET, else DefaultSocket.
func (c *clientFlags) declare(cmd *cmdline.Command) {
	cmd.String(&c.socket, "socket", DefaultSocket, "Workload API socket `path` (or a unix:// address)").
		Alias("socketPath").Env(workloadapi.SocketEnv, EnvPrefix+"_SOCKET")
	cmd.Duration(&c.timeout, "timeout", DefaultTimeout, "give up after this `duration`")
	cmd.String(&c.output, "output", "pretty", "output `format`: pretty, or json (see README.md for its fields)")
}

// check checks the flags and returns the Workload API address of the
// socket flag: a path is made absolute and turned into a unix URI; an
// address with a scheme is kept. Its errors are usage errors.
func (c *clientFlags) check() (string, error) {
	if c.timeout <= 0 {
		return "", errors.New("-timeout must be positive")
	}
	switch c.output {
	case "pretty", "":
	case "json":
		c.json = true
	default:
		return "", fmt.Errorf("-output must be pretty or json, not %q", c.output)
	}
	if strings.Contains(c.socket, ":") {
		if err := workloadapi.ValidateAddress(c.socket); err != nil {
			return "", fmt.Errorf("-socket: %w", err)
		}
		return c.socket, nil
	}
	abs, err := filepath.Abs(c.socket)
	if err != nil {
		return "", fmt.Errorf("-socket: %w", err)
	}
	return "unix://" + abs, nil
}

// parse parses the command's flags and checks those of the client. It
// returns the Workload API address (see check) and true, or, having
// printed the problem or the help, the exit code and false.
func (c *clientFlags) parse(cmd *cmdline.Command, args []string, stdout, stderr io.Writer) (addr string, code int, ok bool) {
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return "", code, false
	}
	addr, err := c.check()
	if err != nil {
		return "", cmd.Misuse(stderr, err), false
	}
	return addr, ExitOK, true
}

// dial returns a client of the Workload API at addr and a context bounded
// by the timeout flag.
func (c *clientFlags) dial(ctx context.Context, addr string) (*workloadapi.Client, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return client, ctx, cancel, nil
}

// callError turns a failed Workload API call into the line to print.
func callError(err error) error {
	switch status.Code(err) {
	case codes.PermissionDenied:
		return fmt.Errorf("no identity for this process (uid %d): the agent has no registration entry that matches it", os.Getuid())
	case codes.DeadlineExceeded:
		return fmt.Errorf("the Workload API did not answer in time: %w", err)
	}
	return err
}

// fetchX509Command is "spiffe-agent api fetch x509".
func fetchX509Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent api fetch x509", "Fetches this process's X509-SVIDs and trust bundles, federated bundles\nincluded, from the Workload API, prints them, and with -write saves them as\nPEM files.")
	var cf clientFlags
	cf.declare(cmd)
	var write string
	var silent bool
	cmd.String(&write, "write", "", "write svid.N.pem, svid.N.key (mode 0600), bundle.N.pem and federated_bundle.N.M.pem into `directory`")
	cmd.Bool(&silent, "silent", false, "print nothing; with -write, only write the files")
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	client, ctx, cancel, err := cf.dial(ctx, addr)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer cancel()
	defer client.Close()
	x509ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		return cmd.Fail(stderr, callError(err))
	}
	if write != "" {
		if err := writeX509(write, x509ctx); err != nil {
			return cmd.Fail(stderr, err)
		}
	}
	switch {
	case silent:
	case cf.json:
		j, err := toX509JSON(x509ctx)
		if err == nil {
			err = printJSON(stdout, j)
		}
		if err != nil {
			return cmd.Fail(stderr, err)
		}
	default:
		printX509Context(stdout, x509ctx, time.Now())
		if write != "" {
			fmt.Fprintf(stdout, "\nWritten to %s\n", write)
		}
	}
	return ExitOK
}

// printX509Context prints the SVIDs of x509ctx, then its federated
// bundles.
func printX509Context(w io.Writer, x509ctx *workloadapi.X509Context, now time.Time) {
	for i, svid := range x509ctx.SVIDs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printX509SVID(w, i, svid, x509ctx, now)
	}
	if fed := federatedBundles(x509ctx); len(fed) > 0 {
		fmt.Fprintf(w, "\nFederated bundles\n")
		for _, b := range fed {
			fmt.Fprintf(w, "  %s, %d X.509 authority(ies)\n", b.TrustDomain().Name(), len(b.X509Authorities()))
		}
	}
}

// federatedBundles returns the bundles of x509ctx of the trust domains no
// SVID of it is in, sorted by trust domain.
func federatedBundles(x509ctx *workloadapi.X509Context) []*x509bundle.Bundle {
	var out []*x509bundle.Bundle
	for _, b := range x509ctx.Bundles.Bundles() {
		if !slices.ContainsFunc(x509ctx.SVIDs, func(s *x509svid.SVID) bool { return s.ID.TrustDomain() == b.TrustDomain() }) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *x509bundle.Bundle) int {
		return strings.Compare(a.TrustDomain().Name(), b.TrustDomain().Name())
	})
	return out
}

func printX509SVID(w io.Writer, i int, svid *x509svid.SVID, x509ctx *workloadapi.X509Context, now time.Time) {
	leaf := svid.Certificates[0]
	fmt.Fprintf(w, "SVID %d\n", i)
	fmt.Fprintf(w, "  SPIFFE ID:  %s\n", svid.ID)
	if svid.Hint != "" {
		fmt.Fprintf(w, "  Hint:       %s\n", svid.Hint)
	}
	fmt.Fprintf(w, "  Expires:    %s (in %s)\n", leaf.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.Sub(now).Round(time.Second))
	fmt.Fprintf(w, "  Serial:     %s\n", leaf.SerialNumber.Text(16))
	fmt.Fprintf(w, "  Chain:      %d certificate(s)\n", len(svid.Certificates))
	for j, c := range svid.Certificates[1:] {
		fmt.Fprintf(w, "    [%d] CA %s, expires %s\n", j+1, certName(c), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if b, err := x509ctx.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain()); err == nil {
		fmt.Fprintf(w, "  Bundle:     %s, %d X.509 authority(ies)\n", svid.ID.TrustDomain().Name(), len(b.X509Authorities()))
	}
}

// certName describes a certificate's subject for a human.
func certName(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	for _, u := range c.URIs {
		return u.String()
	}
	return "serial " + c.SerialNumber.Text(16)
}

// outFile is one file written by -write.
type outFile struct {
	name string
	data []byte
	perm os.FileMode
}

// writeX509 writes each SVID's chain, key (mode 0600), trust domain
// bundle and the federated bundles (federated_bundle.N.M.pem, M counting
// the trust domains in order of their names) into dir, created with mode
// 0700 if missing. Each file is written
// atomically; the key comes first, so that a failure never leaves a
// certificate without its key.
func writeX509(dir string, x509ctx *workloadapi.X509Context) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-write: %w", err)
	}
	fed := federatedBundles(x509ctx)
	for i, svid := range x509ctx.SVIDs {
		n := strconv.Itoa(i)
		key, err := pemutil.EncodePKCS8PrivateKey(svid.PrivateKey)
		if err != nil {
			return fmt.Errorf("encoding the key of %s: %w", svid.ID, err)
		}
		files := []outFile{
			{"svid." + n + ".key", key, 0o600},
			{"svid." + n + ".pem", pemutil.EncodeCertificates(svid.Certificates), 0o644},
		}
		if b, err := x509ctx.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain()); err == nil {
			files = append(files, outFile{"bundle." + n + ".pem", pemutil.EncodeCertificates(b.X509Authorities()), 0o644})
		}
		for j, b := range fed {
			files = append(files, outFile{"federated_bundle." + n + "." + strconv.Itoa(j) + ".pem", pemutil.EncodeCertificates(b.X509Authorities()), 0o644})
		}
		for _, f := range files {
			if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
				return fmt.Errorf("-write: %w", err)
			}
		}
	}
	return nil
}

// fetchJWTCommand is "spiffe-agent api fetch jwt".
func fetchJWTCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent api fetch jwt", "Fetches JWT-SVIDs from the Workload API and prints, for each, its SPIFFE ID\non one line and the token on the next.")
	var cf clientFlags
	cf.declare(cmd)
	var audiences []string
	var subject spiffeid.ID
	cmd.Var(cmdline.NewList(&audiences, cmdline.Text, ","), "audience", "`audience` of the token (required; repeat it, or separate with commas, for several)").Required()
	cmd.Var(cmdline.NewValue(&subject, spiffeid.FromString), "spiffe-id", "ask for the token of this SPIFFE `ID` only (default: every identity of this process)").
		Alias("spiffeID")
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	params := jwtsvid.Params{Audience: audiences[0], ExtraAudiences: audiences[1:], Subject: subject}
	client, ctx, cancel, err := cf.dial(ctx, addr)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer cancel()
	defer client.Close()
	svids, err := client.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return cmd.Fail(stderr, callError(err))
	}
	if cf.json {
		bundles, err := client.FetchJWTBundles(ctx)
		if err != nil {
			return cmd.Fail(stderr, callError(err))
		}
		out, err := toJWTJSON(svids, bundles)
		if err == nil {
			err = printJSON(stdout, out)
		}
		if err != nil {
			return cmd.Fail(stderr, err)
		}
		return ExitOK
	}
	for _, svid := range svids {
		fmt.Fprintf(stdout, "%s\n%s\n", svid.ID, svid.Marshal())
	}
	return ExitOK
}

// fetchWITCommand is "spiffe-agent api fetch wit". It prints the tokens,
// never their private keys: a WIT-SVID proves nothing without its key, and
// the key is the workload's to keep.
func fetchWITCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent api fetch wit", "Fetches WIT-SVIDs from the Workload API and prints, for each, its SPIFFE ID\n"+
		"and expiry on one line and the token on the next (not its private key).")
	var cf clientFlags
	cf.declare(cmd)
	var subject spiffeid.ID
	cmd.Var(cmdline.NewValue(&subject, spiffeid.FromString), "spiffe-id", "ask for the WIT-SVID of this SPIFFE `ID` only (default: every identity of this process)")
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	client, ctx, cancel, err := cf.dial(ctx, addr)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer cancel()
	defer client.Close()
	var id string
	if !subject.IsZero() {
		id = subject.String()
	}
	svids, err := client.FetchWITSVIDs(ctx, id)
	if status.Code(err) == codes.Unimplemented {
		return cmd.Fail(stderr, errors.New("the agent serves no WIT-SVIDs: run it with -wit-svids (wit_svids), and its server with -wit-svids"))
	}
	if err != nil {
		return cmd.Fail(stderr, callError(err))
	}
	if cf.json {
		out := witJSON{SVIDs: []witSVIDJSON{}}
		for _, s := range svids {
			out.SVIDs = append(out.SVIDs, witSVIDJSON{SPIFFEID: s.ID.String(), SVID: s.Marshal(), ExpiresAt: s.Expiry.UTC(), Hint: s.Hint})
		}
		if err := printJSON(stdout, out); err != nil {
			return cmd.Fail(stderr, err)
		}
		return ExitOK
	}
	for _, s := range svids {
		fmt.Fprintf(stdout, "%s (expires %s)\n%s\n", s.ID, s.Expiry.UTC().Format(time.RFC3339), s.Marshal())
	}
	return ExitOK
}

// healthcheckCommand is "spiffe-agent healthcheck". The agent is alive if
// its Workload API answers a call: with bundles, or with PermissionDenied,
// which it sends after attesting a caller that has no identity. Either way
// the agent accepted the connection, attested the caller and looked up its
// entries, which is what a liveness probe needs to know; requiring an
// identity would tie the probe to registration, and probes usually run as
// a user that has none.
func healthcheckCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent healthcheck", "Exits 0 if the Workload API on the socket answers (PermissionDenied counts:\nthe agent answered), 1 otherwise.")
	var cf clientFlags
	cf.declare(cmd)
	var shallow, verbose bool
	cmd.Bool(&shallow, "shallow", false, "SPIRE's lighter check; the same check here")
	cmd.Bool(&verbose, "verbose", false, "say what is checked, on stderr")
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(reason string) int {
		if cf.json {
			_ = printJSON(stdout, healthJSON{Address: addr, Healthy: false, Reason: reason})
		}
		return cmd.Fail(stderr, errors.New("unhealthy: "+reason))
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fail("no socket at " + path)
		}
	}
	if verbose {
		fmt.Fprintf(stderr, "checking the Workload API at %s\n", addr)
	}
	client, ctx, cancel, err := cf.dial(ctx, addr)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer cancel()
	defer client.Close()
	_, err = client.FetchX509Bundles(ctx)
	if err != nil && status.Code(err) != codes.PermissionDenied {
		return fail(fmt.Sprintf("the Workload API at %s did not answer: %v", addr, err))
	}
	if cf.json {
		if err := printJSON(stdout, healthJSON{Address: addr, Healthy: true}); err != nil {
			return cmd.Fail(stderr, err)
		}
		return ExitOK
	}
	fmt.Fprintf(stdout, "healthy: the Workload API at %s answered\n", addr)
	return ExitOK
}
