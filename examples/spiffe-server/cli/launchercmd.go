package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DefaultLauncherSocket is the launcher API's socket: the default of the
// configuration file's launcher.socket_path, and the socket the launch
// commands use when given neither -launcher-socket nor LauncherSocketEnv.
const DefaultLauncherSocket = "/run/spiffe-server/launch.sock"

// LauncherSocketEnv is the environment variable that names the launcher
// API's socket of the launch commands when -launcher-socket is not given.
const LauncherSocketEnv = EnvPrefix + "_LAUNCHER_SOCKET"

// The launch commands are a launcher's client of the launcher API (package
// launch), not of the admin API: they take -launcher-socket, and the uid
// that runs them must be in the launcher section's allowed_uids.
var launchCommands = []command{
	{name: "create", summary: "Makes a launch: a short-lived identity for one sandbox, and the one-time handle that obtains it.",
		help: launchCreateHelp, setup: launchCreate, launcher: true},
	{name: "show", summary: "Prints a launch: its SPIFFE ID, hint, expiry, and whether its handle was redeemed.", setup: launchShow, launcher: true},
	{name: "end", summary: "Ends a launch before its TTL: its handle is refused from then on.", help: launchEndHelp, setup: launchEnd, launcher: true},
}

const launchCreateHelp = `The handle is a secret: whoever holds it obtains, once, an SVID of the
launch's SPIFFE ID at the token exchange endpoint. The server keeps only its
digest, so the output is its only copy: hand it to the sandbox only (in a
file or an environment variable, not on a command line others can read), and
keep it out of logs. The sandbox redeems it with subject_token_type
urn:spiffekit:params:oauth:token-type:launch-handle (see README.md).

-output json also holds the trust domain's X.509 authorities (PEM), with
which the sandbox authenticates the token exchange endpoint and its peers,
and its JWT and WIT authorities (each a JWK Set), with which it validates
JWT-SVIDs and WIT-SVIDs.`

const launchEndHelp = `The launch's entry is deleted. An SVID already obtained stays valid until
it expires, which is at the launch's expiry at the latest.`

// launchIDFlag declares -launch-id (also -launchID), required.
func launchIDFlag(cmd *cmdline.Command) *string {
	var id string
	cmd.String(&id, "launch-id", "", "`ID` of the launch (required; create prints it)").Alias("launchID").Required()
	return &id
}

func launchCreate(cmd *cmdline.Command) action {
	var p launch.Params
	cmd.Var(cmdline.NewValue(&p.SPIFFEID, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` the sandbox obtains (required)").
		Alias("spiffeID").Required()
	cmd.Var(cmdline.NewValue(&p.TTL, parseTTL), "ttl", "lifetime of the launch, a `duration` or a number of seconds (0: the server's default_ttl)")
	cmd.Var(cmdline.NewValue(&p.X509SVIDTTL, parseTTL), "x509-ttl", "lifetime of the X509-SVID, a `duration` at most -ttl (0: an hour, cut to -ttl)").
		Alias("x509SVIDTTL")
	cmd.Var(cmdline.NewValue(&p.JWTSVIDTTL, parseTTL), "jwt-ttl", "lifetime of the JWT-SVID, a `duration` at most -ttl (0: 5 minutes, cut to -ttl)").
		Alias("jwtSVIDTTL")
	cmd.String(&p.Hint, "hint", "", "`hint` kept with the launch's entry: a job or sandbox name")
	return func(ctx context.Context, c *call) error {
		l, err := c.launcher.Launch(ctx, p)
		if err != nil {
			return err
		}
		out := launchCreatedJSON{
			LaunchID: l.ID, SPIFFEID: l.SPIFFEID.String(), Handle: l.Handle, ExpiresAt: l.ExpiresAt.UTC(),
			X509SVIDTTL: l.X509SVIDTTL.Seconds(), JWTSVIDTTL: l.JWTSVIDTTL.Seconds(), X509Authorities: []string{},
		}
		for _, a := range l.X509Authorities {
			out.X509Authorities = append(out.X509Authorities, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Raw})))
		}
		td := l.SPIFFEID.TrustDomain()
		if out.JWTAuthorities, err = jwtbundle.FromJWTAuthorities(td, l.JWTAuthorities).Marshal(); err != nil {
			// Not reached: the client parsed them from such a set.
			return fmt.Errorf("launch %s was made, but its JWT authorities cannot be written: %w", l.ID, err)
		}
		if out.WITAuthorities, err = witbundle.FromWITAuthorities(td, l.WITAuthorities).Marshal(); err != nil {
			// Not reached, as above.
			return fmt.Errorf("launch %s was made, but its WIT authorities cannot be written: %w", l.ID, err)
		}
		return c.print(out, func(w io.Writer) {
			fmt.Fprintf(w, "Launch ID:      %s\n", l.ID)
			fmt.Fprintf(w, "SPIFFE ID:      %s\n", l.SPIFFEID)
			fmt.Fprintf(w, "Expires at:     %s\n", timeString(l.ExpiresAt))
			fmt.Fprintf(w, "X509-SVID TTL:  %s\n", l.X509SVIDTTL)
			fmt.Fprintf(w, "JWT-SVID TTL:   %s\n", l.JWTSVIDTTL)
			fmt.Fprintf(w, "Handle:         %s\n", l.Handle)
		})
	}
}

func launchShow(cmd *cmdline.Command) action {
	id := launchIDFlag(cmd)
	return func(ctx context.Context, c *call) error {
		if err := checkLaunchID(*id); err != nil {
			return err
		}
		info, err := c.launcher.Get(ctx, *id)
		if err != nil {
			return notFound(err, *id)
		}
		return c.print(launchJSON{LaunchID: info.ID, SPIFFEID: info.SPIFFEID.String(), Hint: info.Hint,
			ExpiresAt: info.ExpiresAt.UTC(), Redeemed: info.Redeemed}, func(w io.Writer) {
			fmt.Fprintf(w, "Launch ID:      %s\n", info.ID)
			fmt.Fprintf(w, "SPIFFE ID:      %s\n", info.SPIFFEID)
			if info.Hint != "" {
				fmt.Fprintf(w, "Hint:           %s\n", info.Hint)
			}
			expired := ""
			if !info.ExpiresAt.After(time.Now()) {
				// Until the server prunes it: its handle is refused.
				expired = " (expired)"
			}
			fmt.Fprintf(w, "Expires at:     %s%s\n", timeString(info.ExpiresAt), expired)
			fmt.Fprintf(w, "Redeemed:       %t\n", info.Redeemed)
		})
	}
}

func launchEnd(cmd *cmdline.Command) action {
	id := launchIDFlag(cmd)
	return func(ctx context.Context, c *call) error {
		if err := checkLaunchID(*id); err != nil {
			return err
		}
		if err := c.launcher.End(ctx, *id); err != nil {
			return notFound(err, *id)
		}
		return c.print(launchIDJSON{LaunchID: *id}, func(w io.Writer) { fmt.Fprintf(w, "Ended launch %s\n", *id) })
	}
}

// notFound names the launch id in an error that says it is not found,
// and why it may not be, beyond the server's "no such launch".
func notFound(err error, id string) error {
	if errors.Is(err, launch.ErrNotFound) {
		return fmt.Errorf("%w %s (ended, expired, or never made)", err, id)
	}
	return err
}

// checkLaunchID refuses, as a usage error, what cannot be a launch ID:
// the server would answer that no launch has it.
func checkLaunchID(id string) error {
	if !registry.ValidEntryID(id) {
		return usagef("-launch-id %q is not a launch ID (32 lowercase hexadecimal digits, as create prints it)", id)
	}
	return nil
}

// launchCreatedJSON is the output of launch create.
type launchCreatedJSON struct {
	LaunchID    string    `json:"launch_id"`
	SPIFFEID    string    `json:"spiffe_id"`
	Handle      string    `json:"handle"`
	ExpiresAt   time.Time `json:"expires_at"`
	X509SVIDTTL float64   `json:"x509_svid_ttl"` // seconds
	JWTSVIDTTL  float64   `json:"jwt_svid_ttl"`
	// X509Authorities are PEM CERTIFICATE blocks, one a string.
	X509Authorities []string `json:"x509_authorities"`
	// JWTAuthorities are a JWK Set (RFC 7517), empty ({"keys": []}) when
	// the server handed none.
	JWTAuthorities json.RawMessage `json:"jwt_authorities"`
	// WITAuthorities are a JWK Set too, empty when the server handed none
	// (no server of the trust domain signs WIT-SVIDs).
	WITAuthorities json.RawMessage `json:"wit_authorities"`
}

// launchJSON is the output of launch show.
type launchJSON struct {
	LaunchID  string    `json:"launch_id"`
	SPIFFEID  string    `json:"spiffe_id"`
	Hint      string    `json:"hint"`
	ExpiresAt time.Time `json:"expires_at"`
	Redeemed  bool      `json:"redeemed"`
}

// launchIDJSON is the output of launch end.
type launchIDJSON struct {
	LaunchID string `json:"launch_id"`
}
