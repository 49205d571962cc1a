package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// record is the stored JSON form of an entry. Its field names are part of
// the schema: rename one only in a migration. Entries written by earlier
// versions may hold "admin" and "downstream" keys, flags that nothing ever
// enforced: decode skips them, like any unknown key, and the next write of
// the entry drops them. Entry.Downstream is stored as "downstream_ca", a key
// of its own, so that no such old flag makes an entry a downstream CA.
type record struct {
	ID            string    `json:"id"`
	SPIFFEID      string    `json:"spiffe_id"`
	ParentID      string    `json:"parent_id"`
	Selectors     []string  `json:"selectors"`
	X509SVIDTTL   int64     `json:"x509_svid_ttl_ns,omitempty"`
	JWTSVIDTTL    int64     `json:"jwt_svid_ttl_ns,omitempty"`
	DNSNames      []string  `json:"dns_names,omitempty"`
	FederatesWith []string  `json:"federates_with,omitempty"`
	Hint          string    `json:"hint,omitempty"`
	Downstream    bool      `json:"downstream_ca,omitempty"`
	ExpiresAt     int64     `json:"expires_at,omitempty"` // seconds since the epoch; 0: none
	Revision      int64     `json:"revision"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func encode(e registry.Entry) (string, error) {
	r := record{
		ID:          e.ID,
		SPIFFEID:    e.SPIFFEID.String(),
		ParentID:    e.ParentID.String(),
		X509SVIDTTL: int64(e.X509SVIDTTL),
		JWTSVIDTTL:  int64(e.JWTSVIDTTL),
		DNSNames:    e.DNSNames,
		Hint:        e.Hint,
		Downstream:  e.Downstream,
		Revision:    e.Revision,
		CreatedAt:   e.CreatedAt,
		UpdatedAt:   e.UpdatedAt,
	}
	if !e.ExpiresAt.IsZero() {
		r.ExpiresAt = e.ExpiresAt.Unix()
	}
	for _, s := range e.Selectors {
		r.Selectors = append(r.Selectors, s.String())
	}
	for _, td := range e.FederatesWith {
		r.FederatesWith = append(r.FederatesWith, td.Name())
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encoding entry: %w", err)
	}
	return string(b), nil
}

// decode parses a stored entry. The database is trusted no more than any
// input: every field is parsed and the entry validated. A caller decoding
// many rows uses one decoder for them instead.
func decode(data string) (registry.Entry, error) {
	var d decoder
	return d.decode([]byte(data))
}

// decodeInto parses a stored entry with encoding/json, into r, cleared
// first: a caller decoding many rows passes the same r, which
// encoding/json would otherwise allocate for each. The entry shares
// nothing with r. It is the reference a decoder's fast path must agree
// with, and what decodes (or refuses) the rows that path leaves.
func decodeInto(r *record, data []byte) (registry.Entry, error) {
	*r = record{}
	if err := json.Unmarshal(data, r); err != nil {
		return registry.Entry{}, fmt.Errorf("decoding stored entry: %w", err)
	}
	e := registry.Entry{
		ID:          r.ID,
		X509SVIDTTL: time.Duration(r.X509SVIDTTL),
		JWTSVIDTTL:  time.Duration(r.JWTSVIDTTL),
		DNSNames:    r.DNSNames,
		Hint:        r.Hint,
		Downstream:  r.Downstream,
		Revision:    r.Revision,
		CreatedAt:   r.CreatedAt.UTC(),
		UpdatedAt:   r.UpdatedAt.UTC(),
	}
	if len(e.DNSNames) == 0 {
		e.DNSNames = nil // as for "[]" as for no key: an entry encodes, and decodes again, the same
	}
	if r.ExpiresAt != 0 {
		e.ExpiresAt = time.Unix(r.ExpiresAt, 0).UTC()
	}
	var err error
	if e.SPIFFEID, err = spiffeid.FromString(r.SPIFFEID); err != nil {
		return registry.Entry{}, fmt.Errorf("decoding stored entry %s: %w", r.ID, err)
	}
	if e.ParentID, err = spiffeid.FromString(r.ParentID); err != nil {
		return registry.Entry{}, fmt.Errorf("decoding stored entry %s: %w", r.ID, err)
	}
	if len(r.Selectors) > 0 {
		e.Selectors = make([]attest.Selector, 0, len(r.Selectors))
	}
	for _, s := range r.Selectors {
		sel, err := attest.ParseSelector(s)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("decoding stored entry %s: %w", r.ID, err)
		}
		e.Selectors = append(e.Selectors, sel)
	}
	for _, name := range r.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("decoding stored entry %s: %w", r.ID, err)
		}
		e.FederatesWith = append(e.FederatesWith, td)
	}
	if err := e.Validate(); err != nil {
		return registry.Entry{}, fmt.Errorf("decoding stored entry %s: %w", r.ID, err)
	}
	return e, nil
}
