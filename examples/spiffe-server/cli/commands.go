package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var bundleCommands = []command{
	{name: "show", summary: "Prints the trust domain's own bundle, or with -id a federated one.", setup: bundleShow},
	{name: "set", summary: "Sets the bundle of a federated trust domain from a SPIFFE bundle document or PEM certificates.", setup: bundleSet},
	{name: "list", summary: "Lists the federated trust domains whose bundles the server keeps.", setup: bundleList},
	{name: "delete", summary: "Deletes the bundle of a federated trust domain.", help: bundleDeleteHelp, setup: bundleDelete},
}

var tokenCommands = []command{
	{name: "generate", summary: "Generates a join token and prints it, alone, on stdout.", setup: tokenGenerate},
}

var agentCommands = []command{
	{name: "list", summary: "Lists the attested agents, or with -spiffe-id one of them.", setup: agentList},
	{name: "show", summary: "Prints the record of one agent.", setup: agentShow},
	{name: "count", summary: "Prints how many agents have a record.", setup: agentCount},
	{name: "evict", summary: "Deletes an agent's record: it must attest again.", setup: agentEvict},
	{name: "ban", summary: "Bans an agent: it is refused, and may not attest again, until evicted.", setup: agentBan},
}

func bundleShow(cmd *cmdline.Command) action {
	var format string
	var td spiffeid.TrustDomain
	cmd.String(&format, "format", "pem", "`format` of the pretty output: pem (X.509 authorities) or spiffe (SPIFFE bundle document)")
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` to show instead of the server's own")
	return func(ctx context.Context, c *call) error {
		f := admin.BundleFormat(format)
		if f != admin.FormatPEM && f != admin.FormatSPIFFE {
			return usagef("-format must be pem or spiffe, not %q", format)
		}
		var doc []byte
		var b registry.FederatedBundle
		var err error
		if td.IsZero() {
			if c.json || f == admin.FormatSPIFFE {
				doc, err = c.client.Bundle(ctx, admin.FormatSPIFFE)
			} else {
				doc, err = c.client.Bundle(ctx, admin.FormatPEM)
			}
			if err != nil {
				return err
			}
			if c.json {
				st, err := c.client.Status(ctx)
				if err != nil {
					return err
				}
				return printJSON(c.out, bundleJSON{TrustDomain: st.TrustDomain.Name(), Document: doc})
			}
			_, err = c.out.Write(doc)
			return err
		}
		if b, err = c.client.FederatedBundle(ctx, td); err != nil {
			return err
		}
		switch {
		case c.json:
			return printJSON(c.out, toBundleJSON(b))
		case f == admin.FormatSPIFFE:
			_, err = c.out.Write(append(b.Document, '\n'))
			return err
		}
		sb, err := spiffebundle.Parse(td, b.Document)
		if err != nil {
			return fmt.Errorf("bundle of %s: %w", td.Name(), err)
		}
		pem, err := sb.X509Bundle().Marshal()
		if err != nil {
			return err
		}
		_, err = c.out.Write(pem)
		return err
	}
}

func bundleSet(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	var path, format string
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` (required)").Required()
	cmd.String(&path, "path", "", "`file` holding the bundle (default: stdin)")
	cmd.String(&format, "format", "", "`format` of the bundle: spiffe (a SPIFFE bundle document) or pem (X.509 CA certificates);\ndefault: pem if it begins with -----BEGIN, else spiffe")
	return func(ctx context.Context, c *call) error {
		if format != "" && format != "pem" && format != "spiffe" {
			return usagef("-format must be pem or spiffe, not %q", format)
		}
		doc, err := readDocument(c.in, path)
		if err != nil {
			return err
		}
		if format == "pem" || format == "" && bytes.HasPrefix(bytes.TrimSpace(doc), []byte("-----BEGIN")) {
			if doc, err = pemToDocument(td, doc); err != nil {
				return err
			}
		}
		b, err := c.client.SetFederatedBundle(ctx, td, doc)
		if err != nil {
			return err
		}
		return c.print(toBundleJSON(b), func(w io.Writer) { fmt.Fprintf(w, "Bundle of %s set\n", td.Name()) })
	}
}

// pemToDocument makes the SPIFFE bundle document of td whose X.509
// authorities are the PEM certificates of data, as SPIRE's bundle set
// -format pem does.
func pemToDocument(td spiffeid.TrustDomain, data []byte) ([]byte, error) {
	xb, err := x509bundle.Parse(td, data)
	if err != nil {
		return nil, fmt.Errorf("-format pem: %w", err)
	}
	return spiffebundle.FromX509Bundle(xb).Marshal()
}

// readDocument reads a bundle document of at most
// registry.MaxBundleDocument bytes from path, or from stdin.
func readDocument(stdin io.Reader, path string) ([]byte, error) {
	doc, name, err := readInput(stdin, path, registry.MaxBundleDocument)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	return doc, nil
}

// readInput reads the file at path, or stdin when path is empty, and
// returns its content and its name for messages: the path, or "stdin". It
// fails when there are more than limit bytes.
func readInput(stdin io.Reader, path string, limit int) (data []byte, name string, _ error) {
	r, name := stdin, "stdin"
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("reading %s: %w", name, err)
	case len(data) > limit:
		return nil, "", fmt.Errorf("%s holds more than %d bytes", name, limit)
	}
	return data, name, nil
}

func bundleList(cmd *cmdline.Command) action {
	return func(ctx context.Context, c *call) error {
		bundles, err := c.client.ListFederatedBundles(ctx)
		if err != nil {
			return err
		}
		out := bundlesJSON{Bundles: make([]bundleJSON, len(bundles))}
		for i, b := range bundles {
			out.Bundles[i] = toBundleJSON(b)
		}
		return c.print(out, func(w io.Writer) {
			for _, b := range bundles {
				fmt.Fprintf(w, "%s\tupdated %s\n", b.TrustDomain.Name(), timeString(b.UpdatedAt))
			}
		})
	}
}

const bundleDeleteHelp = `-mode says what becomes of the entries that federate with the trust domain:
restrict (the default) refuses to delete the bundle while any does; delete
deletes them with it; dissociate keeps them, without the trust domain.`

func bundleDelete(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	var mode string
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` (required)").Required()
	cmd.String(&mode, "mode", "restrict", "what becomes of the entries federating with it: restrict, delete or dissociate")
	return func(ctx context.Context, c *call) error {
		m := admin.BundleDeleteMode(mode)
		if m != admin.DeleteRestrict && m != admin.DeleteEntries && m != admin.DeleteDissociate {
			return usagef("-mode must be restrict, delete or dissociate, not %q", mode)
		}
		n, err := c.client.DeleteFederatedBundle(ctx, td, m)
		if err != nil {
			return err
		}
		return c.print(bundleDeleteJSON{TrustDomain: td.Name(), Mode: mode, Entries: n}, func(w io.Writer) {
			fmt.Fprintf(w, "Bundle of %s deleted", td.Name())
			switch {
			case m == admin.DeleteEntries:
				fmt.Fprintf(w, ", with the %d %s federating with it", n, plural(n, "entry", "entries"))
			case m == admin.DeleteDissociate:
				fmt.Fprintf(w, "; %d %s no longer federate with it", n, plural(n, "entry", "entries"))
			}
			fmt.Fprintln(w)
		})
	}
}

func tokenGenerate(cmd *cmdline.Command) action {
	var id spiffeid.ID
	ttl := 10 * time.Minute
	cmd.Var(cmdline.NewValue(&id, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` registered as a node alias of the admitted agent, for entries to name as parent (the agent's own ID stays derived from the token)").
		Alias("spiffeID")
	cmd.Var(cmdline.NewValue(&ttl, parseTTL), "ttl", "how long the token admits a node, a `duration` (1s to 24h; a number alone is seconds)")
	return func(ctx context.Context, c *call) error {
		if ttl < time.Second {
			return usagef("-ttl must be at least 1s")
		}
		tok, err := c.client.GenerateToken(ctx, ttl, id)
		if err != nil {
			return err
		}
		return c.print(tokenJSON{Token: tok.Value, ExpiresAt: tok.ExpiresAt.UTC()}, func(w io.Writer) { fmt.Fprintln(w, tok.Value) })
	}
}

// parseTTL parses a lifetime: a Go duration ("90s", "1h"), or a number
// alone, of seconds, as SPIRE's flags take it ("3600").
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds is out of range", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 1h30m, or a number of seconds: %w", err)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s is negative", d)
	}
	return d, nil
}

// agentIDFlag declares -spiffe-id (also -spiffeID), the agent's ID.
func agentIDFlag(cmd *cmdline.Command, p *spiffeid.ID, usage string) cmdline.Key {
	return cmd.Var(cmdline.NewValue(p, spiffeid.FromString), "spiffe-id", usage).Alias("spiffeID")
}

func agentList(cmd *cmdline.Command) action {
	var id spiffeid.ID
	agentIDFlag(cmd, &id, "show only the agent of this SPIFFE `ID`")
	return func(ctx context.Context, c *call) error {
		var agents []registry.Agent
		if id.IsZero() {
			var err error
			if agents, err = c.client.ListAgents(ctx); err != nil {
				return err
			}
		} else {
			a, err := c.client.Agent(ctx, id)
			if err != nil {
				return err
			}
			agents = []registry.Agent{a}
		}
		out := agentsJSON{Agents: make([]agentJSON, len(agents))}
		for i, a := range agents {
			out.Agents[i] = toAgentJSON(a)
		}
		return c.print(out, func(w io.Writer) {
			if id.IsZero() {
				fmt.Fprintf(w, "Found %d attested %s\n", len(agents), plural(len(agents), "agent", "agents"))
			}
			for _, a := range agents {
				fmt.Fprintln(w)
				printAgent(w, a)
			}
		})
	}
}

func agentShow(cmd *cmdline.Command) action {
	id := requiredAgent(cmd)
	return func(ctx context.Context, c *call) error {
		a, err := c.client.Agent(ctx, *id)
		if err != nil {
			return err
		}
		return c.print(toAgentJSON(a), func(w io.Writer) { printAgent(w, a) })
	}
}

func agentCount(cmd *cmdline.Command) action {
	return func(ctx context.Context, c *call) error {
		n, err := c.client.CountAgents(ctx)
		if err != nil {
			return err
		}
		return c.print(countJSON{Count: n}, func(w io.Writer) { fmt.Fprintf(w, "%d attested %s\n", n, plural(n, "agent", "agents")) })
	}
}

func requiredAgent(cmd *cmdline.Command) *spiffeid.ID {
	var id spiffeid.ID
	agentIDFlag(cmd, &id, "SPIFFE `ID` of the agent (required)").Required()
	return &id
}

func agentEvict(cmd *cmdline.Command) action {
	id := requiredAgent(cmd)
	return func(ctx context.Context, c *call) error {
		if err := c.client.EvictAgent(ctx, *id); err != nil {
			return err
		}
		return c.print(agentIDJSON{SPIFFEID: id.String()}, func(w io.Writer) { fmt.Fprintf(w, "Evicted agent %s\n", *id) })
	}
}

func agentBan(cmd *cmdline.Command) action {
	id := requiredAgent(cmd)
	return func(ctx context.Context, c *call) error {
		a, err := c.client.BanAgent(ctx, *id)
		if err != nil {
			return err
		}
		return c.print(toAgentJSON(a), func(w io.Writer) { fmt.Fprintf(w, "Banned agent %s\n", *id) })
	}
}

func printAgent(w io.Writer, a registry.Agent) {
	fmt.Fprintf(w, "SPIFFE ID:      %s\n", a.ID)
	fmt.Fprintf(w, "Attestor:       %s\n", a.AttestorType)
	fmt.Fprintf(w, "Expires at:     %s\n", timeString(a.ExpiresAt))
	fmt.Fprintf(w, "Serial number:  %s\n", a.SerialNumber)
	fmt.Fprintf(w, "Can reattest:   %t\n", a.CanReattest)
	fmt.Fprintf(w, "Banned:         %t\n", a.Banned)
	for _, s := range a.Selectors {
		fmt.Fprintf(w, "Selector:       %s\n", s)
	}
}
