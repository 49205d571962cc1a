package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var bundleCommands = []command{
	{name: "show", summary: "Prints the trust domain's own bundle, or with -id a federated one.", setup: bundleShow},
	{name: "set", summary: "Sets the bundle of a federated trust domain from a SPIFFE bundle document.", setup: bundleSet},
	{name: "list", summary: "Lists the federated trust domains whose bundles the server keeps.", setup: bundleList},
	{name: "delete", summary: "Deletes the bundle of a federated trust domain.", setup: bundleDelete},
}

var tokenCommands = []command{
	{name: "generate", summary: "Generates a join token and prints it, alone, on stdout.", setup: tokenGenerate},
}

var agentCommands = []command{
	{name: "list", summary: "Lists the attested agents, or with -spiffe-id one of them.", setup: agentList},
	{name: "evict", summary: "Deletes an agent's record: it must attest again.", setup: agentEvict},
	{name: "ban", summary: "Bans an agent: it is refused, and may not attest again, until evicted.", setup: agentBan},
}

func bundleShow(cmd *cmdline.Command) action {
	var format string
	var td spiffeid.TrustDomain
	cmd.String(&format, "format", "pem", "output format: pem (X.509 authorities) or spiffe (SPIFFE bundle document)")
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` to show instead of the server's own")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		f := admin.BundleFormat(format)
		if f != admin.FormatPEM && f != admin.FormatSPIFFE {
			return usagef("-format must be pem or spiffe, not %q", format)
		}
		if td.IsZero() {
			data, err := c.Bundle(ctx, f)
			if err != nil {
				return err
			}
			_, err = out.Write(data)
			return err
		}
		b, err := c.FederatedBundle(ctx, td)
		if err != nil {
			return err
		}
		if f == admin.FormatSPIFFE {
			_, err = out.Write(append(b.Document, '\n'))
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
		_, err = out.Write(pem)
		return err
	}
}

func bundleSet(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	var path string
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` (required)").Required()
	cmd.String(&path, "path", "", "`file` holding the SPIFFE bundle document (default: stdin)")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		doc, err := readDocument(in, path)
		if err != nil {
			return err
		}
		if _, err := c.SetFederatedBundle(ctx, td, doc); err != nil {
			return err
		}
		fmt.Fprintf(out, "Bundle of %s set\n", td.Name())
		return nil
	}
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
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		bundles, err := c.ListFederatedBundles(ctx)
		if err != nil {
			return err
		}
		for _, b := range bundles {
			fmt.Fprintf(out, "%s\tupdated %s\n", b.TrustDomain.Name(), timeString(b.UpdatedAt))
		}
		return nil
	}
}

func bundleDelete(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "federated trust `domain` (required)").Required()
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		if err := c.DeleteFederatedBundle(ctx, td); err != nil {
			return err
		}
		fmt.Fprintf(out, "Bundle of %s deleted\n", td.Name())
		return nil
	}
}

func tokenGenerate(cmd *cmdline.Command) action {
	var id spiffeid.ID
	var ttl time.Duration
	cmd.Var(cmdline.NewValue(&id, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` registered as a node alias of the admitted agent, for entries to name as parent (the agent's own ID stays derived from the token)")
	cmd.Duration(&ttl, "ttl", 10*time.Minute, "how long the token admits a node (1s to 24h)")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		if ttl < time.Second {
			return usagef("-ttl must be at least 1s")
		}
		tok, err := c.GenerateToken(ctx, ttl, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, tok.Value)
		return nil
	}
}

func agentList(cmd *cmdline.Command) action {
	var id spiffeid.ID
	cmd.Var(cmdline.NewValue(&id, spiffeid.FromString), "spiffe-id", "show only the agent of this SPIFFE `ID`")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		var agents []registry.Agent
		if id.IsZero() {
			var err error
			if agents, err = c.ListAgents(ctx); err != nil {
				return err
			}
			fmt.Fprintf(out, "Found %d attested %s\n", len(agents), plural(len(agents), "agent", "agents"))
		} else {
			a, err := c.Agent(ctx, id)
			if err != nil {
				return err
			}
			agents = []registry.Agent{a}
		}
		for _, a := range agents {
			fmt.Fprintln(out)
			printAgent(out, a)
		}
		return nil
	}
}

func requiredAgent(cmd *cmdline.Command) *spiffeid.ID {
	var id spiffeid.ID
	cmd.Var(cmdline.NewValue(&id, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` of the agent (required)").Required()
	return &id
}

func agentEvict(cmd *cmdline.Command) action {
	id := requiredAgent(cmd)
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		if err := c.EvictAgent(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(out, "Evicted agent %s\n", *id)
		return nil
	}
}

func agentBan(cmd *cmdline.Command) action {
	id := requiredAgent(cmd)
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		if _, err := c.BanAgent(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(out, "Banned agent %s\n", *id)
		return nil
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
