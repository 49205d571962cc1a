package cli

import (
	"encoding/json"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
)

// The -output json forms. Their field names are part of the interface,
// documented in README.md ("JSON output"), and checked against golden
// files: add fields, never rename or remove one. Every list is present,
// empty rather than null; times are RFC 3339 in UTC, but for an entry's
// expires_at, seconds since the epoch as SPIRE writes it; durations are
// seconds.

// printJSON prints v as one line of JSON.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// selectorJSON is a selector as SPIRE writes it.
type selectorJSON struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func selectorsJSON(ss []attest.Selector) []selectorJSON {
	out := make([]selectorJSON, len(ss))
	for i, s := range ss {
		out[i] = selectorJSON{Type: s.Type, Value: s.Value}
	}
	return out
}

// entryJSON is an entry. Its fields are those of the entry file of entry
// create -data, which reads it back: the output of entry show or list
// -output json is an entry file.
type entryJSON struct {
	EntryID       string         `json:"entry_id"`
	SPIFFEID      string         `json:"spiffe_id"`
	ParentID      string         `json:"parent_id"`
	Selectors     []selectorJSON `json:"selectors"`
	X509SVIDTTL   float64        `json:"x509_svid_ttl"` // seconds; 0: the server's default
	JWTSVIDTTL    float64        `json:"jwt_svid_ttl"`
	DNSNames      []string       `json:"dns_names"`
	FederatesWith []string       `json:"federates_with"`
	Hint          string         `json:"hint"`
	Downstream    bool           `json:"downstream,omitempty"`
	ExpiresAt     int64          `json:"expires_at"` // seconds since the epoch, as SPIRE writes it; 0: never
	Revision      int64          `json:"revision_number"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

func toEntryJSON(e registry.Entry) entryJSON {
	j := entryJSON{
		EntryID:       e.ID,
		SPIFFEID:      e.SPIFFEID.String(),
		ParentID:      e.ParentID.String(),
		Selectors:     selectorsJSON(e.Selectors),
		X509SVIDTTL:   e.X509SVIDTTL.Seconds(),
		JWTSVIDTTL:    e.JWTSVIDTTL.Seconds(),
		DNSNames:      append([]string{}, e.DNSNames...),
		FederatesWith: []string{},
		Hint:          e.Hint,
		Downstream:    e.Downstream,
		Revision:      e.Revision,
		CreatedAt:     e.CreatedAt.UTC(),
		UpdatedAt:     e.UpdatedAt.UTC(),
	}
	for _, td := range e.FederatesWith {
		j.FederatesWith = append(j.FederatesWith, td.Name())
	}
	if !e.ExpiresAt.IsZero() {
		j.ExpiresAt = e.ExpiresAt.Unix()
	}
	return j
}

// entriesJSON is the output of entry show and entry list.
type entriesJSON struct {
	Entries []entryJSON `json:"entries"`
}

func toEntriesJSON(entries []registry.Entry) entriesJSON {
	out := entriesJSON{Entries: make([]entryJSON, len(entries))}
	for i, e := range entries {
		out.Entries[i] = toEntryJSON(e)
	}
	return out
}

// resultJSON is the outcome of one entry of entry create -data: the entry
// created, or why it was not.
type resultJSON struct {
	Index    int        `json:"index"` // 1-based, in the file
	SPIFFEID string     `json:"spiffe_id"`
	Entry    *entryJSON `json:"entry,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// resultsJSON is the output of entry create -data.
type resultsJSON struct {
	Results []resultJSON `json:"results"`
}

// countJSON is the output of the count commands.
type countJSON struct {
	Count int `json:"count"`
}

// agentJSON is an attested agent.
type agentJSON struct {
	SPIFFEID     string         `json:"spiffe_id"`
	AttestorType string         `json:"attestor_type"`
	Selectors    []selectorJSON `json:"selectors"`
	SerialNumber string         `json:"serial_number"`
	ExpiresAt    time.Time      `json:"expires_at"`
	CanReattest  bool           `json:"can_reattest"`
	Banned       bool           `json:"banned"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

func toAgentJSON(a registry.Agent) agentJSON {
	return agentJSON{
		SPIFFEID:     a.ID.String(),
		AttestorType: a.AttestorType,
		Selectors:    selectorsJSON(a.Selectors),
		SerialNumber: a.SerialNumber,
		ExpiresAt:    a.ExpiresAt.UTC(),
		CanReattest:  a.CanReattest,
		Banned:       a.Banned,
		CreatedAt:    a.CreatedAt.UTC(),
		UpdatedAt:    a.UpdatedAt.UTC(),
	}
}

// agentsJSON is the output of agent list.
type agentsJSON struct {
	Agents []agentJSON `json:"agents"`
}

// agentIDJSON is the output of agent evict.
type agentIDJSON struct {
	SPIFFEID string `json:"spiffe_id"`
}

// bundleJSON is a bundle: the SPIFFE bundle document of a trust domain,
// and when it was stored (federated bundles only).
type bundleJSON struct {
	TrustDomain string          `json:"trust_domain"`
	Document    json.RawMessage `json:"document"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
}

func toBundleJSON(b registry.FederatedBundle) bundleJSON {
	updated := b.UpdatedAt.UTC()
	return bundleJSON{TrustDomain: b.TrustDomain.Name(), Document: b.Document, UpdatedAt: &updated}
}

// bundlesJSON is the output of bundle list.
type bundlesJSON struct {
	Bundles []bundleJSON `json:"bundles"`
}

// bundleDeleteJSON is the output of bundle delete.
type bundleDeleteJSON struct {
	TrustDomain string `json:"trust_domain"`
	Mode        string `json:"mode"`
	// Entries is how many entries were deleted or dissociated.
	Entries int `json:"entries"`
}

// tokenJSON is the output of token generate.
type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}
