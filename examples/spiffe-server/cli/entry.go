package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/nodeapi"
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
	node               bool  // parented by the server: a node alias
	entryExpiry        int64 // seconds since the epoch; 0: none
	downstream         bool  // SPIRE's downstream entries: the workload is a nested server
	// SPIRE's flags for what spiffekit does not do; refused when set.
	admin, storeSVID bool
}

func (f *entryFlags) declare(cmd *cmdline.Command) {
	cmd.Var(cmdline.NewValue(&f.spiffeID, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` the entry issues").Alias("spiffeID")
	cmd.Var(cmdline.NewValue(&f.parentID, spiffeid.FromString), "parent-id", "SPIFFE `ID` of the agent (or node alias) entitled to the entry").Alias("parentID")
	cmd.Var(cmdline.NewList(&f.selectors, attest.ParseSelector, ""), "selector", "`type:value` selector a workload must have (repeatable)")
	cmd.Var(cmdline.NewValue(&f.x509TTL, parseTTL), "x509-ttl", "lifetime of X509-SVIDs, a `duration` or a number of seconds (0: the server's default)").Alias("x509SVIDTTL")
	cmd.Var(cmdline.NewValue(&f.jwtTTL, parseTTL), "jwt-ttl", "lifetime of JWT-SVIDs, a `duration` or a number of seconds (0: the server's default)").Alias("jwtSVIDTTL")
	cmd.Var(cmdline.NewValue(&f.ttl, parseTTL), "ttl", "SPIRE's older name of -x509-ttl, a `duration`, which wins over it")
	cmd.Var(cmdline.NewList(&f.dns, cmdline.Text, ""), "dns", "DNS `name` of X509-SVIDs (repeatable; -dns '' alone: none)")
	cmd.Var(cmdline.NewList(&f.federatesWith, optionalTrustDomain, ""), "federates-with",
		"trust `domain` whose bundle the workload receives (repeatable; a name or spiffe://name; -federates-with '' alone: none)").
		Alias("federatesWith")
	cmd.String(&f.hint, "hint", "", "`hint` that helps a workload choose among its SVIDs")
	cmd.Bool(&f.node, "node", false, "a node alias: an entry for the agents whose node selectors include -selector, parented by the server\n(spiffe://<td>/spiffekit/server); entries parented by its SPIFFE ID go to those agents")
	cmd.Bool(&f.admin, "admin", false, "SPIRE's admin entries: refused, see README.md")
	cmd.Bool(&f.downstream, "downstream", false, "a downstream entry: its workload, a server of the trust domain (upstream_authority.spire),\nmay have this server sign its CA (on update: -downstream=false clears it)")
	cmd.Bool(&f.storeSVID, "storeSVID", false, "SPIRE's SVIDStore entries: refused, see README.md")
	cmd.Var(cmdline.NewValue(&f.entryExpiry, parseEpoch), "entry-expiry",
		"when the entry ends, in `seconds` since the epoch (SPIRE's -entryExpiry): served until then, then deleted;\n0: never (on update: clears it)").
		Alias("entryExpiry")
}

// unsupported refuses what SPIRE entries may hold and spiffekit's may not.
func (f *entryFlags) unsupported() error {
	switch {
	case f.admin:
		return usagef("-admin: %s", errAdminEntry)
	case f.storeSVID:
		return usagef("-storeSVID: %s", errStoreSVID)
	}
	return nil
}

// Why SPIRE's entry fields that spiffekit lacks are refused, for flags and
// entry files alike.
var (
	errAdminEntry = errors.New("an entry grants an identity, never the right to administer the server; " +
		"administer through the admin socket, as root or the server's user")
	errStoreSVID = errors.New("spiffekit has no SVIDStore plugins to store an entry's SVIDs; " +
		"have a workload fetch them (spiffe-agent api fetch x509 -write DIR)")
)

// optionalTrustDomain parses a trust domain; an empty value is the zero
// trust domain, which clears a list.
func optionalTrustDomain(s string) (spiffeid.TrustDomain, error) {
	if s == "" {
		return spiffeid.TrustDomain{}, nil
	}
	return spiffeid.TrustDomainFromString(s)
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
		case "ttl":
			if !cmd.Set("x509-ttl") {
				e.X509SVIDTTL = f.ttl
			}
		case "jwt-ttl":
			e.JWTSVIDTTL = f.jwtTTL
		case "dns":
			// An empty value clears the list.
			e.DNSNames = slices.DeleteFunc(slices.Clone(f.dns), func(s string) bool { return s == "" })
		case "federates-with":
			e.FederatesWith = slices.DeleteFunc(slices.Clone(f.federatesWith), spiffeid.TrustDomain.IsZero)
		case "hint":
			e.Hint = f.hint
		case "entry-expiry":
			e.ExpiresAt = expiryTime(f.entryExpiry)
		case "downstream":
			e.Downstream = f.downstream
		}
	})
}

var entryCommands = []command{
	{name: "create", summary: "Creates a registration entry and prints it, or with -data many entries.", help: entryCreateHelp, setup: entryCreate},
	{name: "update", summary: "Changes the given fields of an entry and prints it.", setup: entryUpdate},
	{name: "show", summary: "Prints the entry of -entry-id, or every entry that matches the filters.", setup: entryList},
	{name: "list", summary: "Prints every entry, or those that match the filters.", setup: entryList},
	{name: "count", summary: "Prints how many entries there are, or how many match the filters.", setup: entryCount},
	{name: "delete", summary: "Deletes an entry.", setup: entryDelete},
}

// entryIDFlag declares -entry-id (also -entryID).
func entryIDFlag(cmd *cmdline.Command, p *string, usage string) cmdline.Key {
	return cmd.Var(cmdline.NewValue(p, parseEntryID), "entry-id", usage).Alias("entryID")
}

// parseEntryID returns the entry ID s names: spiffekit's form (32
// lowercase hexadecimal digits), or a UUID, the form of SPIRE's entry IDs,
// without its dashes and in lower case, so that entries moved from SPIRE
// keep their IDs.
func parseEntryID(s string) (string, error) {
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		if id := strings.ToLower(strings.ReplaceAll(s, "-", "")); registry.ValidEntryID(id) {
			return id, nil
		}
	}
	return s, nil
}

func entryCreate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var data, id string
	entryIDFlag(cmd, &id, "`ID` of the new entry: 32 lowercase hexadecimal digits, or a UUID (SPIRE's form, taken without its dashes);\ndefault: one the server makes")
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
		case f.node && !f.parentID.IsZero():
			return usagef("-node and -parent-id exclude each other: a node alias is parented by the server")
		case f.node && len(f.federatesWith) > 0:
			return usagef("-node and -federates-with exclude each other: a node alias issues no SVIDs to federate")
		case f.parentID.IsZero() && !f.node:
			return usagef("-parent-id is required (or -node)")
		case len(f.selectors) == 0:
			return usagef("at least one -selector is required")
		}
		e := registry.Entry{ID: id}
		f.apply(c.cmd, &e)
		if f.node {
			e.ParentID = spiffeid.RequireFromPath(f.spiffeID.TrustDomain(), nodeapi.ServerPath)
		}
		stored, err := c.client.CreateEntry(ctx, e)
		if err != nil {
			return err
		}
		return c.print(toEntryJSON(stored), func(w io.Writer) { printEntry(w, stored) })
	}
}

// maxUpdateTries bounds how often entry update reads, changes and writes
// an entry that others change meanwhile.
const maxUpdateTries = 5

func entryUpdate(cmd *cmdline.Command) action {
	var f entryFlags
	f.declare(cmd)
	var id string
	entryIDFlag(cmd, &id, "`ID` of the entry to change (required)").Required()
	return func(ctx context.Context, c *call) error {
		if err := f.unsupported(); err != nil {
			return err
		}
		if f.node {
			return usagef("-node: an entry's parent is changed with -parent-id")
		}
		// Read, change, write: the write fails with a conflict if the entry
		// changed in between, rather than undo someone else's change; then
		// the flags are applied to the entry as it is now.
		for try := 1; ; try++ {
			e, err := c.client.Entry(ctx, id)
			if err != nil {
				return err
			}
			changed := e.Clone()
			f.apply(c.cmd, &changed)
			if sameEntry(e, changed) {
				// Nothing to change: no write, no new revision.
				return c.print(toEntryJSON(e), func(w io.Writer) { printEntry(w, e) })
			}
			stored, err := c.client.UpdateEntry(ctx, changed)
			switch {
			case err == nil:
				return c.print(toEntryJSON(stored), func(w io.Writer) { printEntry(w, stored) })
			case !errors.Is(err, registry.ErrConflict):
				return err
			case try == maxUpdateTries:
				return fmt.Errorf("entry %s changed %d times while it was being updated; try again: %w", id, try, err)
			}
		}
	}
}

// sameEntry reports whether writing b over a would change nothing the
// caller sets; the store keeps selectors and trust domains sorted.
func sameEntry(a, b registry.Entry) bool {
	return a.SPIFFEID == b.SPIFFEID && a.ParentID == b.ParentID &&
		a.X509SVIDTTL == b.X509SVIDTTL && a.JWTSVIDTTL == b.JWTSVIDTTL && a.Hint == b.Hint &&
		a.Downstream == b.Downstream && a.ExpiresAt.Equal(b.ExpiresAt) &&
		slices.Equal(a.DNSNames, b.DNSNames) &&
		slices.Equal(sortedSelectors(a.Selectors), sortedSelectors(b.Selectors)) &&
		slices.Equal(sortedTrustDomains(a.FederatesWith), sortedTrustDomains(b.FederatesWith))
}

func sortedSelectors(ss []attest.Selector) []attest.Selector {
	return slices.SortedFunc(slices.Values(ss), attest.Selector.Compare)
}

func sortedTrustDomains(tds []spiffeid.TrustDomain) []spiffeid.TrustDomain {
	return slices.SortedFunc(slices.Values(tds), func(a, b spiffeid.TrustDomain) int { return strings.Compare(a.Name(), b.Name()) })
}

// entryFilter is the filter flags of entry list, show and count.
type entryFilter struct {
	spiffeID, parentID             spiffeid.ID
	selectors                      []attest.Selector
	federatesWith                  []spiffeid.TrustDomain
	matchSelectors, matchFederates string
	hint                           string
}

func (ef *entryFilter) declare(cmd *cmdline.Command) {
	cmd.Var(cmdline.NewValue(&ef.spiffeID, spiffeid.FromString), "spiffe-id", "only entries with this SPIFFE `ID`").Alias("spiffeID")
	cmd.Var(cmdline.NewValue(&ef.parentID, spiffeid.FromString), "parent-id", "only entries with this parent `ID`").Alias("parentID")
	cmd.Var(cmdline.NewList(&ef.selectors, attest.ParseSelector, ""), "selector", "only entries with these `type:value` selectors (repeatable; see -match-selectors)")
	cmd.String(&ef.matchSelectors, "match-selectors", "superset", "how -selector compares: exact, subset, superset or any").Alias("matchSelectorsOn")
	cmd.Var(cmdline.NewList(&ef.federatesWith, spiffeid.TrustDomainFromString, ""), "federates-with",
		"only entries federating with these trust `domain`s (repeatable; see -match-federates-with)").Alias("federatesWith")
	cmd.String(&ef.matchFederates, "match-federates-with", "superset", "how -federates-with compares: exact, subset, superset or any").Alias("matchFederatesWithOn")
	cmd.String(&ef.hint, "hint", "", "only entries with this `hint`")
}

// filter returns the registry filter of the flags; its errors are usage
// errors.
func (ef *entryFilter) filter() (registry.Filter, error) {
	f := registry.Filter{BySPIFFEID: ef.spiffeID, ByParentID: ef.parentID, ByHint: ef.hint}
	if len(ef.selectors) > 0 {
		mode, err := admin.ParseMatchMode(ef.matchSelectors)
		if err != nil {
			return f, usagef("-match-selectors: %v", err)
		}
		f.BySelectors = &registry.SelectorFilter{Selectors: ef.selectors, Match: mode}
	}
	if len(ef.federatesWith) > 0 {
		mode, err := admin.ParseMatchMode(ef.matchFederates)
		if err != nil {
			return f, usagef("-match-federates-with: %v", err)
		}
		f.ByFederatesWith = &registry.FederatesWithFilter{TrustDomains: ef.federatesWith, Match: mode}
	}
	return f, nil
}

// entryList is entry list and entry show, which SPIRE scripts use to list:
// the entry of -entry-id, or the entries that match the filters.
func entryList(cmd *cmdline.Command) action {
	var id string
	var ef entryFilter
	entryIDFlag(cmd, &id, "the entry of this `ID` only (no filter may be given with it)")
	ef.declare(cmd)
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
		f, err := ef.filter()
		if err != nil {
			return err
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

func entryCount(cmd *cmdline.Command) action {
	var ef entryFilter
	ef.declare(cmd)
	return func(ctx context.Context, c *call) error {
		f, err := ef.filter()
		if err != nil {
			return err
		}
		n, err := c.client.CountEntries(ctx, f)
		if err != nil {
			return err
		}
		return c.print(countJSON{Count: n}, func(w io.Writer) {
			fmt.Fprintf(w, "%d registration %s\n", n, plural(n, "entry", "entries"))
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
	if e.Downstream {
		fmt.Fprintf(w, "Downstream:     true\n")
	}
	if !e.ExpiresAt.IsZero() {
		fmt.Fprintf(w, "Entry expiry:   %s (%d)\n", timeString(e.ExpiresAt), e.ExpiresAt.Unix())
	}
}

// parseEpoch parses a time as seconds since the epoch, as SPIRE's
// -entryExpiry takes it: 0 is none; a negative number is refused.
func parseEpoch(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("want seconds since the epoch, such as %d, not %q", time.Now().Add(24*time.Hour).Unix(), s)
	}
	return n, checkEpoch(n)
}

// checkEpoch refuses an entry expiry out of the registry's range.
func checkEpoch(n int64) error {
	switch {
	case n < 0:
		return fmt.Errorf("%d is before the epoch; 0 means no expiry", n)
	case n > registry.MaxExpiry.Unix():
		return fmt.Errorf("%d is after the year 9999 (at most %d)", n, registry.MaxExpiry.Unix())
	}
	return nil
}

// expiryTime is the entry expiry of n seconds since the epoch: none for 0.
func expiryTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
