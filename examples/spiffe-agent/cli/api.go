package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
}

func (c *clientFlags) declare(fs *flag.FlagSet) {
	def := DefaultSocket
	if env, ok := workloadapi.GetDefaultAddress(); ok && env != "" {
		def = env
	}
	fs.StringVar(&c.socket, "socket", def, "Workload API socket `path` (or a unix:// address); default $"+workloadapi.SocketEnv+" if set")
	fs.DurationVar(&c.timeout, "timeout", DefaultTimeout, "give up after this `duration`")
}

// addr returns the Workload API address of the socket flag: a path is made
// absolute and turned into a unix URI; an address with a scheme is kept.
func (c *clientFlags) addr() (string, error) {
	if strings.Contains(c.socket, ":") {
		return c.socket, workloadapi.ValidateAddress(c.socket)
	}
	abs, err := filepath.Abs(c.socket)
	if err != nil {
		return "", err
	}
	return "unix://" + abs, nil
}

// dial returns a client of the Workload API and a context bounded by the
// timeout flag.
func (c *clientFlags) dial(ctx context.Context) (*workloadapi.Client, context.Context, context.CancelFunc, error) {
	if c.timeout <= 0 {
		return nil, nil, nil, errors.New("cli: -timeout must be positive")
	}
	addr, err := c.addr()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cli: -socket: %w", err)
	}
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
	const name = "spiffe-agent api fetch x509"
	fs := newFlagSet(name, "Fetch this process's X509-SVIDs and trust bundles from the Workload API,\nprint them, and with -write save them as PEM files.", stderr)
	var cf clientFlags
	cf.declare(fs)
	write := fs.String("write", "", "write svid.N.pem, svid.N.key (mode 0600) and bundle.N.pem into `directory`")
	if !parseFlags(fs, args, stderr) {
		return ExitUsage
	}
	client, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return fail(stderr, name, err)
	}
	defer cancel()
	defer client.Close()
	x509ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		return fail(stderr, name, callError(err))
	}
	now := time.Now()
	for i, svid := range x509ctx.SVIDs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printX509SVID(stdout, i, svid, x509ctx, now)
	}
	if *write != "" {
		if err := writeX509(*write, x509ctx); err != nil {
			return fail(stderr, name, err)
		}
		fmt.Fprintf(stdout, "\nWritten to %s\n", *write)
	}
	return ExitOK
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

// writeX509 writes each SVID's chain, key (mode 0600) and trust domain
// bundle into dir, created with mode 0700 if missing. Each file is written
// atomically; the key comes first, so that a failure never leaves a
// certificate without its key.
func writeX509(dir string, x509ctx *workloadapi.X509Context) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cli: -write: %w", err)
	}
	for i, svid := range x509ctx.SVIDs {
		n := strconv.Itoa(i)
		key, err := pemutil.EncodePKCS8PrivateKey(svid.PrivateKey)
		if err != nil {
			return fmt.Errorf("cli: encoding the key of %s: %w", svid.ID, err)
		}
		files := []outFile{
			{"svid." + n + ".key", key, 0o600},
			{"svid." + n + ".pem", pemutil.EncodeCertificates(svid.Certificates), 0o644},
		}
		if b, err := x509ctx.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain()); err == nil {
			files = append(files, outFile{"bundle." + n + ".pem", pemutil.EncodeCertificates(b.X509Authorities()), 0o644})
		}
		for _, f := range files {
			if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
				return fmt.Errorf("cli: -write: %w", err)
			}
		}
	}
	return nil
}

// listValue is a repeatable flag.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// fetchJWTCommand is "spiffe-agent api fetch jwt".
func fetchJWTCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "spiffe-agent api fetch jwt"
	fs := newFlagSet(name, "Fetch JWT-SVIDs from the Workload API and print, for each, its SPIFFE ID\non one line and the token on the next.", stderr)
	var cf clientFlags
	cf.declare(fs)
	var audiences listValue
	fs.Var(&audiences, "audience", "`audience` of the token (required; repeat it for several)")
	subject := fs.String("spiffe-id", "", "ask for the token of this SPIFFE `ID` only (default: every identity of this process)")
	if !parseFlags(fs, args, stderr) {
		return ExitUsage
	}
	if len(audiences) == 0 {
		fmt.Fprintf(stderr, "%s: -audience is required\n", name)
		fs.Usage()
		return ExitUsage
	}
	params := jwtsvid.Params{Audience: audiences[0], ExtraAudiences: audiences[1:]}
	if *subject != "" {
		id, err := spiffeid.FromString(*subject)
		if err != nil {
			return fail(stderr, name, fmt.Errorf("cli: -spiffe-id: %w", err))
		}
		params.Subject = id
	}
	client, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return fail(stderr, name, err)
	}
	defer cancel()
	defer client.Close()
	svids, err := client.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return fail(stderr, name, callError(err))
	}
	for _, svid := range svids {
		fmt.Fprintf(stdout, "%s\n%s\n", svid.ID, svid.Marshal())
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
	const name = "spiffe-agent healthcheck"
	fs := newFlagSet(name, "Exit 0 if the Workload API on the socket answers (PermissionDenied counts:\nthe agent answered), 1 otherwise.", stderr)
	var cf clientFlags
	cf.declare(fs)
	if !parseFlags(fs, args, stderr) {
		return ExitUsage
	}
	addr, err := cf.addr()
	if err != nil {
		return fail(stderr, name, fmt.Errorf("cli: -socket: %w", err))
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fail(stderr, name, fmt.Errorf("unhealthy: no socket at %s", path))
		}
	}
	client, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return fail(stderr, name, err)
	}
	defer cancel()
	defer client.Close()
	_, err = client.FetchX509Bundles(ctx)
	if err != nil && status.Code(err) != codes.PermissionDenied {
		return fail(stderr, name, fmt.Errorf("unhealthy: the Workload API at %s did not answer: %w", addr, err))
	}
	fmt.Fprintf(stdout, "healthy: the Workload API at %s answered\n", addr)
	return ExitOK
}
