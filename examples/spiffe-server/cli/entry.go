package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// entryFlags are the fields of an entry as flags, shared by create and
// update. Update changes only the fields whose flags were given.
type entryFlags struct {
	spiffeID, parentID spiffeid.ID
	selectors          []attest.Selector
	x509TTL, jwtTTL    time.Duration
	dns                []string
	federatesWith      []spiffeid.TrustDomain
	hint               string
}

func (f *entryFlags) declare(cmd *cmdline.Command) {
	cmd.Var(cmdline.NewValue(&f.spiffeID, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` the entry issues")
	cmd.Var(cmdline.NewValue(&f.parentID, spiffeid.FromString), "parent-id", "SPIFFE `ID` of the agent (or node alias) entitled to the entry")
	cmd.Var(cmdline.NewList(&f.selectors, attest.ParseSelector, ""), "selector", "`type:value` selector a workload must have (repeatable)")
	cmd.Duration(&f.x509TTL, "x509-ttl", 0, "lifetime of X509-SVIDs (0: the server's default)")
	cmd.Duration(&f.jwtTTL, "jwt-ttl", 0, "lifetime of JWT-SVIDs (0: the server's default)")
	cmd.Var(cmdline.NewList(&f.dns, cmdline.Text, ""), "dns", "DNS `name` of X509-SVIDs (repeatable)")
	cmd.Var(cmdline.NewList(&f.federatesWith, spiffeid.TrustDomainFromString, ""), "federates-with", "trust `domain` whose bundle the workload receives (repeatable)")
	cmd.String(&f.hint, "hint", "", "hint that helps a workload choose among its SVIDs")
}

// apply copies into e the fields whose flags were given.
func (f *entryFlags) apply(cmd *cmdline.Command, e *registry.Entry) {
	cmd.Visit(func(name string) {
		switch name {
		case "spiffe-id":
			e.SPIFFEID = f.spiffeID
		case "parent-id":
			e.ParentID = f.parentID
		case "selector":
			e.Selectors = f.selectors
		case "x509-ttl":
			e.X509SVIDTTL = f.x509TTL
		case "jwt-ttl":
			e.JWTSVIDTTL = f.jwtTTL
		case "dns":
			e.DNSNames = f.dns
		case "federates-with":
			e.FederatesWith = f.federatesWith
		case "hint":
			e.Hint = f.hint
		}
	})
}

// write applies to e the fields whose flags were given, has the server
// store it with store (create or update), and prints what it stored.
func (f *entryFlags) write(ctx context.Context, cmd *cmdline.Command, e registry.Entry,
	store func(context.Context, registry.Entry) (registry.Entry, error), out io.Writer,
) error {
	f.apply(cmd, &e)
	stored, err := store(ctx, e)
	if err != nil {
		return err
	}
	printEntry(out, stored)
	return nil
}

var entryCommands = []command{
	{name: "create", summary: "Creates a registration entry and prints it, or with -data many entries.", help: entryCreateHelp, setup: entryCreate},
	{name: "update", summary: "Changes the given fields of an entry and prints it.", setup: entryUpdate},
	{name: "show", summary: "Prints one entry.", setup: entryShow},
	{name: "list", summary: "Prints every entry, or those that match the filters.", setup: entryList},
	{name: "delete", summary: "Deletes an entry.", setup: entryDelete},
}

func entryCreate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var data string
	cmd.String(&data, "data", "", "JSON `FILE` of entries to create (see above), - for stdin; excludes the entry flags")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		switch {
		case data != "" && entryFlagsSet(cmd):
			return usagef("-data cannot be combined with the flags of one entry")
		case data != "":
			return createFromFile(ctx, c, in, out, data)
		case f.spiffeID.IsZero():
			return usagef("-spiffe-id is required")
		case f.parentID.IsZero():
			return usagef("-parent-id is required")
		case len(f.selectors) == 0:
			return usagef("at least one -selector is required")
		}
		return f.write(ctx, cmd, registry.Entry{}, c.CreateEntry, out)
	}
}

func entryUpdate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var id string
	cmd.String(&id, "entry-id", "", "`ID` of the entry to change (required)").Required()
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		// Read, change, write: the write fails with a conflict if the entry
		// changed in between, rather than undo someone else's change.
		e, err := c.Entry(ctx, id)
		if err != nil {
			return err
		}
		return f.write(ctx, cmd, e, c.UpdateEntry, out)
	}
}

func entryShow(cmd *cmdline.Command) action {
	var id string
	cmd.String(&id, "entry-id", "", "`ID` of the entry (required)").Required()
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		e, err := c.Entry(ctx, id)
		if err != nil {
			return err
		}
		printEntry(out, e)
		return nil
	}
}

func entryList(cmd *cmdline.Command) action {
	var spiffeID, parentID spiffeid.ID
	var selectors []attest.Selector
	var federatesWith []spiffeid.TrustDomain
	var match, hint string
	cmd.Var(cmdline.NewValue(&spiffeID, spiffeid.FromString), "spiffe-id", "only entries with this SPIFFE `ID`")
	cmd.Var(cmdline.NewValue(&parentID, spiffeid.FromString), "parent-id", "only entries with this parent `ID`")
	cmd.Var(cmdline.NewList(&selectors, attest.ParseSelector, ""), "selector", "only entries with these `type:value` selectors (repeatable; see -match-selectors)")
	cmd.String(&match, "match-selectors", "superset", "how -selector compares: exact, subset, superset or any")
	cmd.Var(cmdline.NewList(&federatesWith, spiffeid.TrustDomainFromString, ""), "federates-with", "only entries federating with any of these trust `domain`s (repeatable)")
	cmd.String(&hint, "hint", "", "only entries with this hint")
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		f := registry.Filter{BySPIFFEID: spiffeID, ByParentID: parentID, ByHint: hint}
		mode, err := admin.ParseMatchMode(match)
		if err != nil {
			return usagef("-match-selectors: %v", err)
		}
		if len(selectors) > 0 {
			f.BySelectors = &registry.SelectorFilter{Selectors: selectors, Match: mode}
		}
		if len(federatesWith) > 0 {
			f.ByFederatesWith = &registry.FederatesWithFilter{TrustDomains: federatesWith, Match: registry.MatchAny}
		}
		entries, err := c.ListEntries(ctx, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Found %d %s\n", len(entries), plural(len(entries), "entry", "entries"))
		for _, e := range entries {
			fmt.Fprintln(out)
			printEntry(out, e)
		}
		return nil
	}
}

func entryDelete(cmd *cmdline.Command) action {
	var id string
	cmd.String(&id, "entry-id", "", "`ID` of the entry to delete (required)").Required()
	return func(ctx context.Context, cmd *cmdline.Command, c *admin.Client, in io.Reader, out io.Writer) error {
		if _, err := c.DeleteEntry(ctx, id, 0); err != nil {
			return err
		}
		fmt.Fprintf(out, "Deleted entry %s\n", id)
		return nil
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// printEntry writes an entry as "Label: value" lines, the entry ID first.
func printEntry(w io.Writer, e registry.Entry) {
	fmt.Fprintf(w, "Entry ID:       %s\n", e.ID)
	fmt.Fprintf(w, "SPIFFE ID:      %s\n", e.SPIFFEID)
	fmt.Fprintf(w, "Parent ID:      %s\n", e.ParentID)
	fmt.Fprintf(w, "Revision:       %d\n", e.Revision)
	fmt.Fprintf(w, "X509-SVID TTL:  %s\n", ttlString(e.X509SVIDTTL))
	fmt.Fprintf(w, "JWT-SVID TTL:   %s\n", ttlString(e.JWTSVIDTTL))
	for _, s := range e.Selectors {
		fmt.Fprintf(w, "Selector:       %s\n", s)
	}
	for _, name := range e.DNSNames {
		fmt.Fprintf(w, "DNS name:       %s\n", name)
	}
	for _, td := range e.FederatesWith {
		fmt.Fprintf(w, "FederatesWith:  %s\n", td.Name())
	}
	if e.Hint != "" {
		fmt.Fprintf(w, "Hint:           %s\n", e.Hint)
	}
}
