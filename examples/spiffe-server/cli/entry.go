package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// entryFlags are the fields of an entry as flags, shared by create and
// update, under their names and SPIRE's. Update changes only the fields
// whose flags were given.
type entryFlags struct {
	spiffeID, parentID spiffeid.ID
	selectors          []attest.Selector
	x509TTL, jwtTTL    time.Duration
	ttl                time.Duration // SPIRE's -ttl: the X509-SVID TTL unless -x509-ttl is given
	dns                []string
	federatesWith      []spiffeid.TrustDomain
	hint               string
	// SPIRE's flags for what spiffekit does not do; refused when set.
	admin, downstream, storeSVID bool
	entryExpiry                  int64
}

func (f *entryFlags) declare(cmd *cmdline.Command) {
	cmd.Var(cmdline.NewValue(&f.spiffeID, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` the entry issues").Alias("spiffeID")
	cmd.Var(cmdline.NewValue(&f.parentID, spiffeid.FromString), "parent-id", "SPIFFE `ID` of the agent (or node alias) entitled to the entry").Alias("parentID")
	cmd.Var(cmdline.NewList(&f.selectors, attest.ParseSelector, ""), "selector", "`type:value` selector a workload must have (repeatable)")
	cmd.Var(cmdline.NewValue(&f.x509TTL, parseTTL), "x509-ttl", "lifetime of X509-SVIDs, a duration or a number of seconds (0: the server's default)").Alias("x509SVIDTTL")
	cmd.Var(cmdline.NewValue(&f.jwtTTL, parseTTL), "jwt-ttl", "lifetime of JWT-SVIDs, a duration or a number of seconds (0: the server's default)").Alias("jwtSVIDTTL")
	cmd.Var(cmdline.NewValue(&f.ttl, parseTTL), "ttl", "SPIRE's older name of -x509-ttl, which wins over it")
	cmd.Var(cmdline.NewList(&f.dns, cmdline.Text, ""), "dns", "DNS `name` of X509-SVIDs (repeatable)")
	cmd.Var(cmdline.NewList(&f.federatesWith, spiffeid.TrustDomainFromString, ""), "federates-with",
		"trust `domain` whose bundle the workload receives (repeatable; a name or spiffe://name)").Alias("federatesWith")
	cmd.String(&f.hint, "hint", "", "`hint` that helps a workload choose among its SVIDs")
	cmd.Bool(&f.admin, "admin", false, "SPIRE's admin entries: refused, see README.md")
	cmd.Bool(&f.downstream, "downstream", false, "SPIRE's downstream entries: refused, see README.md")
	cmd.Bool(&f.storeSVID, "storeSVID", false, "SPIRE's SVIDStore entries: refused, see README.md")
	cmd.Var(cmdline.NewValue(&f.entryExpiry, parseEpoch), "entryExpiry", "SPIRE's entry expiry, in `seconds` since the epoch: refused, see README.md")
}

// unsupported refuses what SPIRE entries may hold and spiffekit's may not.
func (f *entryFlags) unsupported() error {
	switch {
	case f.admin:
		return usagef("-admin: %s", errAdminEntry)
	case f.downstream:
		return usagef("-downstream: %s", errDownstreamEntry)
	case f.storeSVID:
		return usagef("-storeSVID: %s", errStoreSVID)
	case f.entryExpiry != 0:
		return usagef("-entryExpiry: %s", errEntryExpiry)
	}
	return nil
}

// Why SPIRE's entry fields that spiffekit lacks are refused, for flags and
// entry files alike.
var (
	errAdminEntry = errors.New("an entry grants an identity, never the right to administer the server; " +
		"administer through the admin socket, as root or the server's user")
	errDownstreamEntry = errors.New("nested servers are not supported; an entry cannot make its workload a downstream CA")
	errStoreSVID       = errors.New("spiffekit has no SVIDStore plugins to store an entry's SVIDs; " +
		"have a workload fetch them (spiffe-agent api fetch x509 -write DIR)")
	errEntryExpiry = errors.New("entries do not expire yet; delete the entry when it should end")
)

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
		case "ttl":
			if !cmd.Set("x509-ttl") {
				e.X509SVIDTTL = f.ttl
			}
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

var entryCommands = []command{
	{name: "create", summary: "Creates a registration entry and prints it, or with -data many entries.", help: entryCreateHelp, setup: entryCreate},
	{name: "update", summary: "Changes the given fields of an entry and prints it.", setup: entryUpdate},
	{name: "show", summary: "Prints the entry of -entry-id, or every entry that matches the filters.", setup: entryList},
	{name: "list", summary: "Prints every entry, or those that match the filters.", setup: entryList},
	{name: "delete", summary: "Deletes an entry.", setup: entryDelete},
}

// entryIDFlag declares -entry-id (also -entryID).
func entryIDFlag(cmd *cmdline.Command, p *string, usage string) cmdline.Key {
	return cmd.String(p, "entry-id", "", usage).Alias("entryID")
}

func entryCreate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var data string
	cmd.String(&data, "data", "", "JSON `FILE` of entries to create (see above), - for stdin; excludes the entry flags")
	return func(ctx context.Context, c *call) error {
		if err := f.unsupported(); err != nil {
			return err
		}
		switch {
		case data != "" && entryFlagsSet(c.cmd):
			return usagef("-data cannot be combined with the flags of one entry")
		case data != "":
			return createFromFile(ctx, c, data)
		case f.spiffeID.IsZero():
			return usagef("-spiffe-id is required")
		case f.parentID.IsZero():
			return usagef("-parent-id is required")
		case len(f.selectors) == 0:
			return usagef("at least one -selector is required")
		}
		var e registry.Entry
		f.apply(c.cmd, &e)
		stored, err := c.client.CreateEntry(ctx, e)
		if err != nil {
			return err
		}
		return c.print(toEntryJSON(stored), func(w io.Writer) { printEntry(w, stored) })
	}
}

func entryUpdate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var id string
	entryIDFlag(cmd, &id, "`ID` of the entry to change (required)").Required()
	return func(ctx context.Context, c *call) error {
		if err := f.unsupported(); err != nil {
			return err
		}
		// Read, change, write: the write fails with a conflict if the entry
		// changed in between, rather than undo someone else's change.
		e, err := c.client.Entry(ctx, id)
		if err != nil {
			return err
		}
		f.apply(c.cmd, &e)
		stored, err := c.client.UpdateEntry(ctx, e)
		if err != nil {
			return err
		}
		return c.print(toEntryJSON(stored), func(w io.Writer) { printEntry(w, stored) })
	}
}

// entryList is entry list and entry show, which SPIRE scripts use to list:
// the entry of -entry-id, or the entries that match the filters.
func entryList(cmd *cmdline.Command) action {
	var id string
	var spiffeID, parentID spiffeid.ID
	var selectors []attest.Selector
	var federatesWith []spiffeid.TrustDomain
	var matchSelectors, matchFederates, hint string
	entryIDFlag(cmd, &id, "the entry of this `ID` only (no filter may be given with it)")
	cmd.Var(cmdline.NewValue(&spiffeID, spiffeid.FromString), "spiffe-id", "only entries with this SPIFFE `ID`").Alias("spiffeID")
	cmd.Var(cmdline.NewValue(&parentID, spiffeid.FromString), "parent-id", "only entries with this parent `ID`").Alias("parentID")
	cmd.Var(cmdline.NewList(&selectors, attest.ParseSelector, ""), "selector", "only entries with these `type:value` selectors (repeatable; see -match-selectors)")
	cmd.String(&matchSelectors, "match-selectors", "superset", "how -selector compares: exact, subset, superset or any").Alias("matchSelectorsOn")
	cmd.Var(cmdline.NewList(&federatesWith, spiffeid.TrustDomainFromString, ""), "federates-with",
		"only entries federating with these trust `domain`s (repeatable; see -match-federates-with)").Alias("federatesWith")
	cmd.String(&matchFederates, "match-federates-with", "superset", "how -federates-with compares: exact, subset, superset or any").Alias("matchFederatesWithOn")
	cmd.String(&hint, "hint", "", "only entries with this `hint`")
	return func(ctx context.Context, c *call) error {
		if id != "" {
			if entryFilterSet(c.cmd) {
				return usagef("-entry-id cannot be combined with filters")
			}
			e, err := c.client.Entry(ctx, id)
			if err != nil {
				return err
			}
			return c.print(toEntriesJSON([]registry.Entry{e}), func(w io.Writer) { printEntry(w, e) })
		}
		f := registry.Filter{BySPIFFEID: spiffeID, ByParentID: parentID, ByHint: hint}
		if len(selectors) > 0 {
			mode, err := admin.ParseMatchMode(matchSelectors)
			if err != nil {
				return usagef("-match-selectors: %v", err)
			}
			f.BySelectors = &registry.SelectorFilter{Selectors: selectors, Match: mode}
		}
		if len(federatesWith) > 0 {
			mode, err := admin.ParseMatchMode(matchFederates)
			if err != nil {
				return usagef("-match-federates-with: %v", err)
			}
			f.ByFederatesWith = &registry.FederatesWithFilter{TrustDomains: federatesWith, Match: mode}
		}
		entries, err := c.client.ListEntries(ctx, f)
		if err != nil {
			return err
		}
		return c.print(toEntriesJSON(entries), func(w io.Writer) {
			fmt.Fprintf(w, "Found %d %s\n", len(entries), plural(len(entries), "entry", "entries"))
			for _, e := range entries {
				fmt.Fprintln(w)
				printEntry(w, e)
			}
		})
	}
}

// entryFilterSet reports whether a filter of entry list was given.
func entryFilterSet(cmd *cmdline.Command) bool {
	set := false
	cmd.Visit(func(name string) {
		switch name {
		case "spiffe-id", "parent-id", "selector", "federates-with", "hint":
			set = true
		}
	})
	return set
}

func entryDelete(cmd *cmdline.Command) action {
	var id string
	entryIDFlag(cmd, &id, "`ID` of the entry to delete (required)").Required()
	return func(ctx context.Context, c *call) error {
		e, err := c.client.DeleteEntry(ctx, id, 0)
		if err != nil {
			return err
		}
		return c.print(toEntryJSON(e), func(w io.Writer) { fmt.Fprintf(w, "Deleted entry %s\n", id) })
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

// parseEpoch parses a time as seconds since the epoch.
func parseEpoch(s string) (int64, error) {
	return strconv.ParseInt(s, 10, 64)
}
