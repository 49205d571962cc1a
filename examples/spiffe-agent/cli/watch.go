package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// watchCommand is "spiffe-agent api watch": it prints every X.509 context
// the Workload API sends, as api fetch x509 does, until SIGINT or SIGTERM
// (its context). A failed stream is reported on stderr and opened again
// with backoff; only an error retrying cannot fix ends the command.
func watchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent api watch", "Attaches to the Workload API and prints this process's X509-SVIDs and\nbundles, federated bundles included, each time they change, until SIGINT\nor SIGTERM. With -output json, one line of JSON per update.")
	var cf clientFlags
	cf.declare(cmd)
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	// A socket missing at the start is a mistake rather than an outage.
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return cmd.Fail(stderr, fmt.Errorf("no Workload API socket at %s: %w", path, errors.Unwrap(err)))
		}
	}
	// -timeout bounds the construction of the client only: a watch lasts.
	dialCtx, cancel := context.WithTimeout(ctx, cf.timeout)
	client, err := workloadapi.New(dialCtx, workloadapi.WithAddr(addr))
	cancel()
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer client.Close()
	w := &watcher{cmd: cmd, json: cf.json, stdout: stdout, stderr: stderr, since: time.Now()}
	err = client.WatchX509Context(ctx, w)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return ExitOK
	}
	return cmd.Fail(stderr, callError(err))
}

// watcher prints the updates of a watch.
type watcher struct {
	cmd            *cmdline.Command
	json           bool
	stdout, stderr io.Writer

	mu    sync.Mutex
	since time.Time // of the previous update, or of the start
}

func (w *watcher) OnX509ContextUpdate(x509ctx *workloadapi.X509Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if w.json {
		j, err := toX509JSON(x509ctx)
		if err == nil {
			err = printJSON(w.stdout, j)
		}
		if err != nil {
			fmt.Fprintf(w.stderr, "%s: %s\n", w.cmd.Name(), cmdline.OneLine(err))
		}
	} else {
		fmt.Fprintf(w.stdout, "Received %d SVID(s) after %s\n\n", len(x509ctx.SVIDs), now.Sub(w.since).Round(time.Millisecond))
		printX509Context(w.stdout, x509ctx, now)
		fmt.Fprintln(w.stdout)
	}
	w.since = now
}

func (w *watcher) OnX509ContextWatchError(err error) {
	if status.Code(err) == codes.Canceled {
		return
	}
	// The client retries every error but InvalidArgument and
	// Unimplemented, which end the watch and are printed by its command.
	if c := status.Code(err); c == codes.InvalidArgument || c == codes.Unimplemented {
		return
	}
	fmt.Fprintf(w.stderr, "%s: %s (retrying)\n", w.cmd.Name(), cmdline.OneLine(callError(err)))
}

// validateJWTCommand is "spiffe-agent api validate jwt".
func validateJWTCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent api validate jwt", "Has the Workload API validate a JWT-SVID for an audience: exits 0 and\nprints its SPIFFE ID and claims if it is valid, 1 with the reason if not.")
	var cf clientFlags
	cf.declare(cmd)
	var audience, token string
	cmd.String(&audience, "audience", "", "the `audience` the token must be for (required)").Required()
	cmd.String(&token, "svid", "", "the JWT-SVID `token`; - or absent: read it from standard input (a pipe or file)")
	addr, code, ok := cf.parse(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	if token == "-" || !cmd.Set("svid") {
		var err error
		if token, err = readStdinToken(stdin, token == "-"); err != nil {
			return cmd.Misuse(stderr, err)
		}
	}
	token = strings.TrimSpace(token)
	if audience == "" {
		return cmd.Misuse(stderr, errors.New("-audience must not be empty"))
	}
	if token == "" {
		return cmd.Misuse(stderr, errors.New("-svid must not be empty"))
	}
	client, ctx, cancel, err := cf.dial(ctx, addr)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer cancel()
	defer client.Close()
	svid, err := client.ValidateJWTSVID(ctx, token, audience)
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
			return cmd.Fail(stderr, fmt.Errorf("SVID is not valid: %s", s.Message()))
		}
		return cmd.Fail(stderr, callError(err))
	}
	if cf.json {
		if err := printJSON(stdout, validJSON{SPIFFEID: svid.ID.String(), Claims: svid.Claims}); err != nil {
			return cmd.Fail(stderr, err)
		}
		return ExitOK
	}
	claims, err := jsonLine(svid.Claims)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	fmt.Fprintf(stdout, "SVID is valid.\nSPIFFE ID : %s\nClaims    : %s\n", svid.ID, claims)
	return ExitOK
}

// stdin is where api validate jwt reads a token given as -svid - or not
// given; tests replace it.
var stdin io.Reader = os.Stdin

// maxToken bounds a token read from standard input.
const maxToken = 1 << 20

// readStdinToken reads a JWT-SVID from r: always when asked (-svid -), else
// only when r is a pipe or a file, not a terminal or /dev/null, so that a
// forgotten -svid does not wait for input.
func readStdinToken(r io.Reader, asked bool) (string, error) {
	if !asked {
		f, ok := r.(*os.File)
		if !ok {
			return "", errors.New("-svid is required (the token, or - to read it from standard input)")
		}
		fi, err := f.Stat()
		if err != nil || fi.Mode()&os.ModeCharDevice != 0 {
			return "", errors.New("-svid is required (the token, or - to read it from standard input)")
		}
	}
	data, err := io.ReadAll(io.LimitReader(r, maxToken+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("reading the token from standard input: %w", err)
	case len(data) > maxToken:
		return "", fmt.Errorf("the token on standard input is longer than %d bytes", maxToken)
	case len(strings.TrimSpace(string(data))) == 0:
		return "", errors.New("-svid: no token on standard input")
	}
	return string(data), nil
}

// jsonLine returns v as JSON, without the newline.
func jsonLine(v any) (string, error) {
	var b strings.Builder
	if err := printJSON(&b, v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
