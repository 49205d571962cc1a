package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

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

(with -output json, {"results": [...]}, see README.md). An entry that fails
does not keep the others from being created. The exit code is 1 if any
entry failed. FILE is SPIRE's entry file, which entry show -output json also
writes; every field but spiffe_id, parent_id and selectors may be left out:

  {"entries": [
    {"spiffe_id": "spiffe://example.org/web",
     "parent_id": "spiffe://example.org/agent/node1",
     "selectors": [{"type": "unix", "value": "uid:1000"}, "unix:gid:50"],
     "x509_svid_ttl": 3600, "jwt_svid_ttl": "5m",
     "dns_names": ["web.example.org"], "federates_with": ["other.org"],
     "hint": ""}
  ]}

A selector is {"type": ..., "value": ...} or "type:value"; a TTL is a number
of seconds or a duration ("1h30m"); federates_with takes names or
spiffe://name. SPIRE's ttl is taken for x509_svid_ttl. expires_at (or
entryExpiry, SPIRE's entry file name) is when the entry ends, in seconds
since the epoch, a number or a string of one; 0 or none: never; an expiry
that has passed fails its entry. entry_id (or id, as
SPIRE's entry show -output json names it), if any, is the new entry's ID (a
UUID is taken without its dashes); an entry whose ID is taken fails.
spiffe_id and parent_id may also be {"trust_domain": ..., "path": ...}, as
SPIRE's entry show -output json writes them, so that its output is read as
it is. revision_number, created_at, updated_at and next_page_token are
ignored; admin and store_svid are refused when set.`

// dataFileJSON is the file of entry create -data.
type dataFileJSON struct {
	Entries []dataEntryJSON `json:"entries"`
	// Written by SPIRE's entry show -output json; ignored.
	NextPageToken json.RawMessage `json:"next_page_token"`
}

// dataEntryJSON is one entry of the file: SPIRE's registration entry
// (spire.common.RegistrationEntry, as its CLI reads it), SPIRE's API entry
// (spire.api.types.Entry, as its entry show -output json writes it), and
// what entry show -output json writes here (entryJSON), with selectors and
// TTLs also in the forms the flags take.
type dataEntryJSON struct {
	SPIFFEID      dataID         `json:"spiffe_id"`
	ParentID      dataID         `json:"parent_id"`
	Selectors     []dataSelector `json:"selectors"`
	X509SVIDTTL   dataTTL        `json:"x509_svid_ttl"`
	JWTSVIDTTL    dataTTL        `json:"jwt_svid_ttl"`
	TTL           dataTTL        `json:"ttl"` // SPIRE's name of x509_svid_ttl before 1.5
	DNSNames      []string       `json:"dns_names"`
	FederatesWith []string       `json:"federates_with"`
	Hint          string         `json:"hint"`
	Admin         bool           `json:"admin"`
	Downstream    bool           `json:"downstream"`
	StoreSVID     bool           `json:"store_svid"`
	EntryExpiry   dataInt        `json:"entryExpiry"` // SPIRE's entry file name of expires_at
	ExpiresAt     dataInt        `json:"expires_at"`  // seconds since the epoch, as SPIRE's API
	EntryID       string         `json:"entry_id"`
	ID            string         `json:"id"` // SPIRE's API name of entry_id
	// Written by SPIRE and by entry show -output json; ignored.
	RevisionNumber json.RawMessage `json:"revision_number"`
	CreatedAt      json.RawMessage `json:"created_at"`
	UpdatedAt      json.RawMessage `json:"updated_at"`
}

// dataID is a SPIFFE ID of the file: "spiffe://td/path", or
// {"trust_domain": ..., "path": ...}, as SPIRE's API writes it. text is
// the ID as a string, for messages and parsing; a malformed object fails
// its entry, not the file: err keeps why.
type dataID struct {
	text string
	err  error
}

func (d *dataID) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &d.text) == nil {
		return nil
	}
	var obj struct {
		TrustDomain string `json:"trust_domain"`
		Path        string `json:"path"`
	}
	if err := cmdline.DecodeStrict(b, &obj); err != nil {
		d.err = fmt.Errorf("a SPIFFE ID is \"spiffe://...\" or {\"trust_domain\": ..., \"path\": ...}: %w", err)
		return nil
	}
	d.text = "spiffe://" + obj.TrustDomain + obj.Path
	if obj.Path != "" && !strings.HasPrefix(obj.Path, "/") {
		d.err = fmt.Errorf("path %q does not start with /", obj.Path)
	}
	return nil
}

// parse returns the ID, or the zero ID when none was given.
func (d dataID) parse() (spiffeid.ID, error) {
	if d.err != nil {
		return spiffeid.ID{}, d.err
	}
	if d.text == "" {
		return spiffeid.ID{}, nil
	}
	return spiffeid.FromString(d.text)
}

// dataInt is an integer of the file: a JSON number, or a string of one, as
// SPIRE's API writes its 64-bit integers. A bad one fails its entry, not
// the file: err keeps why.
type dataInt struct {
	v   int64
	err error
}

func (n *dataInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var text string
	if json.Unmarshal(b, &text) == nil {
		b = []byte(text)
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		n.err = fmt.Errorf("want an integer, not %s", b)
		return nil
	}
	n.v = v
	return nil
}

// dataSelector is a selector of the file: {"type": ..., "value": ...}, as
// SPIRE writes it, or "type:value", as the -selector flag takes it. A bad
// one fails its entry, not the file: err keeps why.
type dataSelector struct {
	sel attest.Selector
	err error
}

func (s *dataSelector) UnmarshalJSON(b []byte) error {
	var text string
	if json.Unmarshal(b, &text) == nil {
		s.sel, s.err = attest.ParseSelector(text)
		return nil
	}
	var obj struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	if err := cmdline.DecodeStrict(b, &obj); err != nil {
		s.err = fmt.Errorf("a selector is {\"type\": ..., \"value\": ...} or \"type:value\": %w", err)
		return nil
	}
	s.sel = attest.Selector{Type: obj.Type, Value: obj.Value}
	s.err = s.sel.Validate()
	return nil
}

// dataTTL is a lifetime of the file: a number of seconds, as SPIRE writes
// it, or a string parseTTL takes ("1h", "3600"). A bad one fails its
// entry, not the file: err keeps why.
type dataTTL struct {
	d   time.Duration
	set bool
	err error
}

func (t *dataTTL) UnmarshalJSON(b []byte) error {
	t.set = true
	var text string
	if json.Unmarshal(b, &text) == nil {
		t.d, t.err = parseTTL(text)
		return nil
	}
	var secs float64
	switch err := json.Unmarshal(b, &secs); {
	case err != nil:
		t.err = fmt.Errorf("want a number of seconds or a duration such as \"1h\", not %s", b)
	case secs < 0 || secs > float64(math.MaxInt64/int64(time.Second)):
		t.err = fmt.Errorf("%s seconds is out of range", b)
	default:
		t.d = time.Duration(secs * float64(time.Second))
	}
	return nil
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
	switch {
	case j.Admin:
		return registry.Entry{}, fmt.Errorf("admin: %w", errAdminEntry)
	case j.StoreSVID:
		return registry.Entry{}, fmt.Errorf("store_svid: %w", errStoreSVID)
	case j.EntryExpiry.err != nil:
		return registry.Entry{}, fmt.Errorf("entryExpiry: %w", j.EntryExpiry.err)
	case j.ExpiresAt.err != nil:
		return registry.Entry{}, fmt.Errorf("expires_at: %w", j.ExpiresAt.err)
	case checkEpoch(j.EntryExpiry.v) != nil:
		return registry.Entry{}, fmt.Errorf("entryExpiry: %w", checkEpoch(j.EntryExpiry.v))
	case checkEpoch(j.ExpiresAt.v) != nil:
		return registry.Entry{}, fmt.Errorf("expires_at: %w", checkEpoch(j.ExpiresAt.v))
	case j.EntryExpiry.v != 0 && j.ExpiresAt.v != 0 && j.EntryExpiry.v != j.ExpiresAt.v:
		return registry.Entry{}, fmt.Errorf("entryExpiry %d and expires_at %d differ", j.EntryExpiry.v, j.ExpiresAt.v)
	case j.EntryID != "" && j.ID != "" && j.EntryID != j.ID:
		return registry.Entry{}, fmt.Errorf("entry_id %q and id %q differ", j.EntryID, j.ID)
	}
	for _, t := range []struct {
		name string
		ttl  dataTTL
	}{{"x509_svid_ttl", j.X509SVIDTTL}, {"jwt_svid_ttl", j.JWTSVIDTTL}, {"ttl", j.TTL}} {
		if t.ttl.err != nil {
			return registry.Entry{}, fmt.Errorf("%s: %w", t.name, t.ttl.err)
		}
	}
	entryID := j.EntryID
	if entryID == "" {
		entryID = j.ID
	}
	id, _ := parseEntryID(entryID)
	e := registry.Entry{ID: id, DNSNames: j.DNSNames, Hint: j.Hint, Downstream: j.Downstream, X509SVIDTTL: j.X509SVIDTTL.d, JWTSVIDTTL: j.JWTSVIDTTL.d,
		ExpiresAt: expiryTime(max(j.ExpiresAt.v, j.EntryExpiry.v))}
	if !j.X509SVIDTTL.set {
		e.X509SVIDTTL = j.TTL.d
	}
	if len(e.DNSNames) == 0 {
		e.DNSNames = nil
	}
	var err error
	if e.SPIFFEID, err = j.SPIFFEID.parse(); err != nil {
		return registry.Entry{}, fmt.Errorf("spiffe_id: %w", err)
	}
	if e.ParentID, err = j.ParentID.parse(); err != nil {
		return registry.Entry{}, fmt.Errorf("parent_id: %w", err)
	}
	for _, s := range j.Selectors {
		if s.err != nil {
			return registry.Entry{}, fmt.Errorf("selectors: %w", s.err)
		}
		e.Selectors = append(e.Selectors, s.sel)
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

// createFromFile runs entry create -data: it converts every entry of the
// file, sends those that convert, and prints one result per entry in file
// order. An entry whose fields do not parse fails on its own, like one the
// server refuses.
func createFromFile(ctx context.Context, c *call, path string) error {
	file, err := readDataFile(c.in, path)
	if err != nil {
		return err
	}
	results := make([]resultJSON, len(file))
	var entries []registry.Entry
	var at []int // at[k] is the index in the file of entries[k]
	for i, j := range file {
		results[i] = resultJSON{Index: i + 1, SPIFFEID: j.SPIFFEID.text}
		e, err := j.toEntry()
		if err != nil {
			results[i].Error = cmdline.OneLine(err)
			continue
		}
		if spireParent(e.ParentID) {
			fmt.Fprintf(c.err, "warning: entry %d (%s): its parent %s is an ID of SPIRE's server or agents, which no spiffekit "+
				"server or agent holds: no agent will serve it until its parent is rewritten (docs/MIGRATING-FROM-SPIRE.md)\n",
				i+1, e.SPIFFEID, e.ParentID)
		}
		entries = append(entries, e)
		at = append(at, i)
	}
	answers, sendErr := c.client.CreateEntries(ctx, entries)
	for k, r := range answers {
		i := at[k]
		if r.Err != nil {
			results[i].Error = cmdline.OneLine(r.Err)
			continue
		}
		e := toEntryJSON(r.Entry)
		results[i].Entry = &e
	}
	// Results up to the first entry sent but not answered (a request
	// failed), if any.
	answered := len(results)
	if len(answers) < len(at) {
		answered = at[len(answers)]
	}
	results = results[:answered]
	nFailed := 0
	for _, r := range results {
		if r.Error != "" {
			nFailed++
		}
	}
	err = c.print(resultsJSON{Results: results}, func(w io.Writer) {
		for _, r := range results {
			if r.Error != "" {
				id := r.SPIFFEID
				if id == "" {
					id = "no SPIFFE ID"
				}
				fmt.Fprintf(w, "error: entry %d (%s): %s\n", r.Index, id, r.Error)
				continue
			}
			fmt.Fprintf(w, "%s %s\n", r.Entry.EntryID, r.Entry.SPIFFEID)
		}
	})
	switch {
	case err != nil:
		return err
	case sendErr != nil:
		return fmt.Errorf("after %d of %d entries: %w", len(answers), len(entries), sendErr)
	case nFailed > 0:
		return fmt.Errorf("%d of %d %s not created", nFailed, len(file), plural(len(file), "entry", "entries"))
	}
	return nil
}

// spireParent reports whether id is SPIRE's server ID or under its agents'
// path, which entries exported from SPIRE name as their parents.
func spireParent(id spiffeid.ID) bool {
	p := id.Path()
	return p == "/spire/server" || strings.HasPrefix(p, "/spire/agent/")
}

// entryFlagsSet reports whether any flag of cmd other than -admin-socket,
// -output and -data was given.
func entryFlagsSet(cmd *cmdline.Command) bool {
	set := false
	cmd.Visit(func(name string) {
		if name != "admin-socket" && name != "output" && name != "data" {
			set = true
		}
	})
	return set
}
