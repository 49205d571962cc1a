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

// maxDataFile bounds the entry file of entry create -data in bytes: room
// for some hundred thousand entries of ordinary size.
const maxDataFile = 64 << 20

// entryCreateHelp documents the file of entry create -data.
const entryCreateHelp = `With -data FILE (or -data - for stdin), creates every entry of FILE
instead of the one the entry flags describe, in batches that each commit at
once, and prints one line per entry, in the order of the file:

  ENTRY-ID SPIFFE-ID                      for an entry created
  error: entry N (SPIFFE-ID): MESSAGE     for an entry that was not

An entry that fails does not keep the others from being created. The exit
code is 1 if any entry failed. FILE is JSON; every field but spiffe_id,
parent_id and selectors may be left out:

  {"entries": [
    {"spiffe_id": "spiffe://example.org/web",
     "parent_id": "spiffe://example.org/agent/node1",
     "selectors": ["unix:uid:1000", "unix:gid:50"],
     "x509_svid_ttl": "1h", "jwt_svid_ttl": "5m",
     "dns_names": ["web.example.org"], "federates_with": ["other.org"],
     "hint": ""}
  ]}`

// dataFileJSON is the file of entry create -data.
type dataFileJSON struct {
	Entries []dataEntryJSON `json:"entries"`
}

// dataEntryJSON is one entry of the file, with selectors in their text
// form "type:value", as the -selector flag takes them.
type dataEntryJSON struct {
	SPIFFEID      string   `json:"spiffe_id"`
	ParentID      string   `json:"parent_id"`
	Selectors     []string `json:"selectors"`
	X509SVIDTTL   string   `json:"x509_svid_ttl"`
	JWTSVIDTTL    string   `json:"jwt_svid_ttl"`
	DNSNames      []string `json:"dns_names"`
	FederatesWith []string `json:"federates_with"`
	Hint          string   `json:"hint"`
}

// readDataFile reads and decodes the entry file at path, or stdin for "-".
func readDataFile(stdin io.Reader, path string) ([]dataEntryJSON, error) {
	if path == "-" {
		path = ""
	}
	data, name, err := readInput(stdin, path, maxDataFile)
	if err != nil {
		return nil, err
	}
	var file dataFileJSON
	if err := cmdline.DecodeStrict(data, &file); err != nil {
		return nil, fmt.Errorf("%s: malformed entry file: %w", name, err)
	}
	return file.Entries, nil
}

// toEntry converts one entry of the file; the error names the field.
func (j dataEntryJSON) toEntry() (registry.Entry, error) {
	e := registry.Entry{DNSNames: j.DNSNames, Hint: j.Hint}
	var err error
	if j.SPIFFEID != "" {
		if e.SPIFFEID, err = spiffeid.FromString(j.SPIFFEID); err != nil {
			return registry.Entry{}, fmt.Errorf("spiffe_id: %w", err)
		}
	}
	if j.ParentID != "" {
		if e.ParentID, err = spiffeid.FromString(j.ParentID); err != nil {
			return registry.Entry{}, fmt.Errorf("parent_id: %w", err)
		}
	}
	for _, s := range j.Selectors {
		sel, err := attest.ParseSelector(s)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("selectors: %w", err)
		}
		e.Selectors = append(e.Selectors, sel)
	}
	if e.X509SVIDTTL, err = optionalDuration(j.X509SVIDTTL); err != nil {
		return registry.Entry{}, fmt.Errorf("x509_svid_ttl: %w", err)
	}
	if e.JWTSVIDTTL, err = optionalDuration(j.JWTSVIDTTL); err != nil {
		return registry.Entry{}, fmt.Errorf("jwt_svid_ttl: %w", err)
	}
	for _, name := range j.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("federates_with: %w", err)
		}
		e.FederatesWith = append(e.FederatesWith, td)
	}
	return e, nil
}

func optionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// createFromFile runs entry create -data: it converts every entry of the
// file, sends those that convert, and prints one line per entry in file
// order. An entry whose fields do not parse fails on its own, like one the
// server refuses.
func createFromFile(ctx context.Context, c *admin.Client, stdin io.Reader, out io.Writer, path string) error {
	file, err := readDataFile(stdin, path)
	if err != nil {
		return err
	}
	lines := make([]string, len(file))
	failed := make([]bool, len(file))
	var entries []registry.Entry
	var at []int // at[k] is the index in the file of entries[k]
	for i, j := range file {
		e, err := j.toEntry()
		if err != nil {
			lines[i], failed[i] = failLine(i, j.SPIFFEID, err), true
			continue
		}
		entries = append(entries, e)
		at = append(at, i)
	}
	results, sendErr := c.CreateEntries(ctx, entries)
	for k, r := range results {
		i := at[k]
		if r.Err != nil {
			lines[i], failed[i] = failLine(i, file[i].SPIFFEID, r.Err), true
			continue
		}
		lines[i] = r.Entry.ID + " " + r.Entry.SPIFFEID.String()
	}
	nFailed := 0
	for i, line := range lines {
		if line == "" { // not answered: a request failed
			break
		}
		if failed[i] {
			nFailed++
		}
		fmt.Fprintln(out, line)
	}
	if sendErr != nil {
		return fmt.Errorf("after %d of %d entries: %w", len(results), len(entries), sendErr)
	}
	if nFailed > 0 {
		return fmt.Errorf("%d of %d %s not created", nFailed, len(file), plural(len(file), "entry", "entries"))
	}
	return nil
}

func failLine(i int, spiffeID string, err error) string {
	if spiffeID == "" {
		spiffeID = "no SPIFFE ID"
	}
	return fmt.Sprintf("error: entry %d (%s): %s", i+1, spiffeID, cmdline.OneLine(err))
}

// entryFlagsSet reports whether any flag of cmd other than -admin-socket
// and -data was given.
func entryFlagsSet(cmd *cmdline.Command) bool {
	set := false
	cmd.Visit(func(name string) {
		if name != "admin-socket" && name != "data" {
			set = true
		}
	})
	return set
}
