package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
)

// The authority commands follow SPIRE's localauthority commands: list (all
// kinds), then per kind (x509, jwt, wit as SPIRE's x509, jwt, wit) show,
// prepare, activate, taint and revoke, with -authorityID and -output
// pretty|json.
var authorityCommands = []command{
	{name: "list", summary: "Lists the X.509 CAs, JWT keys and WIT keys of every server of the trust domain.", setup: authorityList("")},
}

// authorityKindCommands returns the commands of "authority x509",
// "authority jwt" or "authority wit".
func authorityKindCommands(k registry.AuthorityKind) []command {
	what := kindTitle(k)
	rotationHelp, taintHelp := authorityRotationHelp, authorityTaintHelp
	taintSummary := "what it signed is replaced early, by every agent."
	if k != registry.AuthorityX509 {
		taintSummary = "the tokens it signed are replaced early, by every agent."
		taintHelp += "\n\n" + authorityKeyTaintHelp
	}
	if k == registry.AuthorityWIT {
		rotationHelp += "\n\n" + authorityWITHelp
		taintHelp += "\n\n" + authorityWITHelp
	}
	return []command{
		{name: "show", summary: "Lists the " + what + " authorities of every server of the trust domain.", setup: authorityList(k)},
		{name: "prepare", summary: "Prepares a new " + what + " authority on this server: published in the bundle, signing nothing yet.",
			help: rotationHelp, setup: authorityAction(k, "prepare")},
		{name: "activate", summary: "Makes this server's prepared " + what + " authority the one that signs; the active one becomes old.",
			help: rotationHelp, setup: authorityAction(k, "activate")},
		{name: "taint", summary: "Taints an old " + what + " authority of any server: " + taintSummary,
			help: taintHelp, setup: authorityAction(k, "taint")},
		{name: "revoke", summary: "Revokes a " + what + " authority that is not active: every server leaves it out of the bundle.",
			help: taintHelp, setup: authorityAction(k, "revoke")},
	}
}

const authorityRotationHelp = `The CA rotates on its own. To replace an authority early (a key that may
have leaked): prepare a new one, wait until relying parties have fetched the
bundle holding it, activate it, taint the old one so that agents replace
what it signed, and revoke it once they have. Prepare and activate act on
the CA of the server whose admin socket you use.`

const authorityTaintHelp = `Taint and revoke act on an authority of any server of the trust domain,
named by -authorityID (see "authority list"). Only an old authority can be
tainted: to taint the active one, prepare and activate another on its
server first. Through another server than its own, only an old authority
can be revoked. A taint or revocation of another server's authority is
recorded in the shared database: its server applies it as soon as it hears
of it (or when it starts again), and every server honours it meanwhile.`

const authorityKeyTaintHelp = `Agents are told of tainted keys as of tainted X.509 CAs: they drop the
JWT-SVIDs and WIT-SVIDs a tainted key signed and serve tokens of the active
key from the next fetch on (open WIT-SVID streams get theirs at once),
without waiting for half their life. A revoked key leaves the bundle: its
tokens stop verifying at once.`

const authorityWITHelp = `Only a server run with -wit-svids has WIT keys (the keys that sign
WIT-SVIDs, published in the bundle with use "wit-svid"); on another server,
prepare and activate fail, and show lists only the other servers' WIT keys.`

func kindTitle(k registry.AuthorityKind) string {
	switch k {
	case registry.AuthorityX509:
		return "X.509"
	case registry.AuthorityWIT:
		return "WIT"
	}
	return "JWT"
}

func authorityList(k registry.AuthorityKind) func(cmd *cmdline.Command) action {
	return func(cmd *cmdline.Command) action {
		return func(ctx context.Context, c *call) error {
			all, err := c.client.Authorities(ctx)
			if err != nil {
				return err
			}
			var list []admin.Authority
			for _, a := range all {
				if k == "" || a.Kind == k {
					list = append(list, a)
				}
			}
			doc := struct {
				Authorities []authorityJSON `json:"authorities"`
			}{Authorities: []authorityJSON{}}
			for _, a := range list {
				doc.Authorities = append(doc.Authorities, toAuthorityJSON(a))
			}
			return c.print(doc, func(w io.Writer) {
				noun := "authorities"
				if k != "" {
					noun = kindTitle(k) + " " + noun
				}
				fmt.Fprintf(w, "Found %d %s\n", len(list), noun)
				for _, a := range list {
					fmt.Fprintln(w)
					printAuthority(w, a)
				}
			})
		}
	}
}

func authorityAction(k registry.AuthorityKind, verb string) func(cmd *cmdline.Command) action {
	return func(cmd *cmdline.Command) action {
		var id string
		switch verb {
		case "taint", "revoke":
			cmd.String(&id, "authorityID", "", "`ID` of the authority (required; see authority list)").Required()
		case "activate":
			cmd.String(&id, "authorityID", "", "`ID` of the prepared authority, checked before it is activated (default: whichever is prepared)")
		}
		return func(ctx context.Context, c *call) error {
			var (
				a   admin.Authority
				err error
			)
			switch verb {
			case "prepare":
				a, err = c.client.PrepareAuthority(ctx, k)
			case "activate":
				a, err = c.client.ActivateAuthority(ctx, k, id)
			case "taint":
				a, err = c.client.TaintAuthority(ctx, k, id)
			case "revoke":
				a, err = c.client.RevokeAuthority(ctx, k, id)
			}
			if err != nil {
				return err
			}
			return c.print(toAuthorityJSON(a), func(w io.Writer) {
				past := map[string]string{"prepare": "Prepared", "activate": "Activated", "taint": "Tainted", "revoke": "Revoked"}[verb]
				fmt.Fprintf(w, "%s %s authority:\n", past, kindTitle(k))
				printAuthority(w, a)
				if a.Pending {
					fmt.Fprintf(w, "\nRecorded for server %s, which applies it as soon as it hears of it; every server honours it meanwhile.\n", a.ServerID)
				}
			})
		}
	}
}

// authorityJSON is the -output json form of an authority.
type authorityJSON struct {
	Kind        registry.AuthorityKind  `json:"kind"`
	AuthorityID string                  `json:"authority_id"`
	ServerID    string                  `json:"server_id"`
	Local       bool                    `json:"local"`
	State       registry.AuthorityState `json:"state"`
	ExpiresAt   time.Time               `json:"expires_at"`
	Tainted     bool                    `json:"tainted"`
	Revoked     bool                    `json:"revoked"`
	Pending     bool                    `json:"pending"`
}

func toAuthorityJSON(a admin.Authority) authorityJSON {
	return authorityJSON{
		Kind: a.Kind, AuthorityID: a.ID, ServerID: a.ServerID, Local: a.Local, State: a.State,
		ExpiresAt: a.NotAfter.UTC(), Tainted: a.Tainted, Revoked: a.Revoked, Pending: a.Pending,
	}
}

func printAuthority(w io.Writer, a admin.Authority) {
	server := a.ServerID
	if a.Local {
		server += " (this server)"
	}
	fmt.Fprintf(w, "Kind:           %s\n", kindTitle(a.Kind))
	fmt.Fprintf(w, "Authority ID:   %s\n", a.ID)
	fmt.Fprintf(w, "Server:         %s\n", server)
	fmt.Fprintf(w, "State:          %s\n", a.State)
	fmt.Fprintf(w, "Expires at:     %s\n", timeString(a.NotAfter))
	var marks []string
	if a.Tainted {
		marks = append(marks, "tainted")
	}
	if a.Revoked {
		marks = append(marks, "revoked")
	}
	if a.Pending {
		marks = append(marks, "pending on its server")
	}
	if len(marks) > 0 {
		fmt.Fprintf(w, "Marked:         %s\n", strings.Join(marks, ", "))
	}
}
