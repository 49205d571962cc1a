package admin

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The JSON forms of the API's values. IDs and trust domains travel as
// strings, durations in Go's duration syntax ("1h30m"), times in RFC 3339.

type selectorJSON struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type entryJSON struct {
	ID            string         `json:"id,omitempty"`
	SPIFFEID      string         `json:"spiffe_id"`
	ParentID      string         `json:"parent_id"`
	Selectors     []selectorJSON `json:"selectors"`
	X509SVIDTTL   string         `json:"x509_svid_ttl,omitempty"`
	JWTSVIDTTL    string         `json:"jwt_svid_ttl,omitempty"`
	DNSNames      []string       `json:"dns_names,omitempty"`
	FederatesWith []string       `json:"federates_with,omitempty"`
	Hint          string         `json:"hint,omitempty"`
	Downstream    bool           `json:"downstream,omitempty"`
	ExpiresAt     *time.Time     `json:"expires_at,omitempty"` // none when absent
	Revision      int64          `json:"revision,omitempty"`
	CreatedAt     *time.Time     `json:"created_at,omitempty"`
	UpdatedAt     *time.Time     `json:"updated_at,omitempty"`
}

type agentJSON struct {
	ID                   string         `json:"id"`
	AttestorType         string         `json:"attestor_type"`
	Selectors            []selectorJSON `json:"selectors"`
	SerialNumber         string         `json:"serial_number"`
	PreviousSerialNumber string         `json:"previous_serial_number,omitempty"`
	ExpiresAt            time.Time      `json:"expires_at"`
	CanReattest          bool           `json:"can_reattest"`
	Banned               bool           `json:"banned"`
	CreatedAt            time.Time      `json:"created_at"`
	UpdatedAt            time.Time      `json:"updated_at"`
}

type bundleJSON struct {
	TrustDomain string          `json:"trust_domain"`
	Document    json.RawMessage `json:"document"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

type tokenRequestJSON struct {
	TTL string `json:"ttl"`
	// SPIFFEID is the node alias of the admitted agent.
	SPIFFEID string `json:"spiffe_id,omitempty"`
}

type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type countJSON struct {
	Count int `json:"count"`
}

type bundleDeleteJSON struct {
	TrustDomain string `json:"trust_domain"`
	Mode        string `json:"mode"`
	// Entries is how many entries were deleted or dissociated.
	Entries int `json:"entries"`
}

type statusJSON struct {
	TrustDomain string `json:"trust_domain"`
	Healthy     bool   `json:"healthy"`
	Reason      string `json:"reason,omitempty"`
}

type errorJSON struct {
	Error string `json:"error"`
	// Code names the error's kind for clients: one of the code* constants.
	Code string `json:"code,omitempty"`
}

// Error codes carried beside the message, so that a client can tell 409
// conflicts from 409 duplicates without reading the message.
const (
	codeInvalid          = "invalid"
	codeNotFound         = "not_found"
	codeConflict         = "conflict"
	codeAlreadyExists    = "already_exists"
	codePermissionDenied = "permission_denied"
	// codeFailedPrecondition: the request is valid, but the state of what
	// it names forbids it (tainting the active authority).
	codeFailedPrecondition = "failed_precondition"
	// codeUnavailable: the server's stores did not answer in time.
	codeUnavailable = "unavailable"
	codeInternal    = "internal"
)

func selectorsToJSON(ss []attest.Selector) []selectorJSON {
	out := make([]selectorJSON, len(ss))
	for i, s := range ss {
		out[i] = selectorJSON{Type: s.Type, Value: s.Value}
	}
	return out
}

func selectorsFromJSON(ss []selectorJSON) []attest.Selector {
	if len(ss) == 0 {
		return nil
	}
	out := make([]attest.Selector, len(ss))
	for i, s := range ss {
		out[i] = attest.Selector{Type: s.Type, Value: s.Value}
	}
	return out
}

func formatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return d, nil
}

func optionalID(field, s string) (spiffeid.ID, error) {
	if s == "" {
		return spiffeid.ID{}, nil
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%s: %w", field, err)
	}
	return id, nil
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func entryToJSON(e registry.Entry) entryJSON {
	j := entryJSON{
		ID:          e.ID,
		Selectors:   selectorsToJSON(e.Selectors),
		X509SVIDTTL: formatDuration(e.X509SVIDTTL),
		JWTSVIDTTL:  formatDuration(e.JWTSVIDTTL),
		DNSNames:    e.DNSNames,
		Hint:        e.Hint,
		Downstream:  e.Downstream,
		ExpiresAt:   optionalTime(e.ExpiresAt),
		Revision:    e.Revision,
		CreatedAt:   optionalTime(e.CreatedAt),
		UpdatedAt:   optionalTime(e.UpdatedAt),
	}
	if !e.SPIFFEID.IsZero() {
		j.SPIFFEID = e.SPIFFEID.String()
	}
	if !e.ParentID.IsZero() {
		j.ParentID = e.ParentID.String()
	}
	for _, td := range e.FederatesWith {
		j.FederatesWith = append(j.FederatesWith, td.Name())
	}
	return j
}

// entryFromJSON converts the wire form; errors name the field and are
// reported to the caller as invalid input.
func entryFromJSON(j entryJSON) (registry.Entry, error) {
	e := registry.Entry{
		ID:         j.ID,
		Selectors:  selectorsFromJSON(j.Selectors),
		Hint:       j.Hint,
		Downstream: j.Downstream,
		ExpiresAt:  derefTime(j.ExpiresAt),
		Revision:   j.Revision,
		CreatedAt:  derefTime(j.CreatedAt),
		UpdatedAt:  derefTime(j.UpdatedAt),
	}
	if len(j.DNSNames) > 0 { // an empty list is no list, as in the stores
		e.DNSNames = j.DNSNames
	}
	var err error
	if e.SPIFFEID, err = optionalID("spiffe_id", j.SPIFFEID); err != nil {
		return registry.Entry{}, err
	}
	if e.ParentID, err = optionalID("parent_id", j.ParentID); err != nil {
		return registry.Entry{}, err
	}
	if e.X509SVIDTTL, err = parseDuration("x509_svid_ttl", j.X509SVIDTTL); err != nil {
		return registry.Entry{}, err
	}
	if e.JWTSVIDTTL, err = parseDuration("jwt_svid_ttl", j.JWTSVIDTTL); err != nil {
		return registry.Entry{}, err
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

func agentToJSON(a registry.Agent) agentJSON {
	return agentJSON{
		ID:                   a.ID.String(),
		AttestorType:         a.AttestorType,
		Selectors:            selectorsToJSON(a.Selectors),
		SerialNumber:         a.SerialNumber,
		PreviousSerialNumber: a.PreviousSerialNumber,
		ExpiresAt:            a.ExpiresAt,
		CanReattest:          a.CanReattest,
		Banned:               a.Banned,
		CreatedAt:            a.CreatedAt,
		UpdatedAt:            a.UpdatedAt,
	}
}

func agentFromJSON(j agentJSON) (registry.Agent, error) {
	id, err := spiffeid.FromString(j.ID)
	if err != nil {
		return registry.Agent{}, fmt.Errorf("agent id: %w", err)
	}
	return registry.Agent{
		ID:                   id,
		AttestorType:         j.AttestorType,
		Selectors:            selectorsFromJSON(j.Selectors),
		SerialNumber:         j.SerialNumber,
		PreviousSerialNumber: j.PreviousSerialNumber,
		ExpiresAt:            j.ExpiresAt,
		CanReattest:          j.CanReattest,
		Banned:               j.Banned,
		CreatedAt:            j.CreatedAt,
		UpdatedAt:            j.UpdatedAt,
	}, nil
}

func bundleFromJSON(j bundleJSON) (registry.FederatedBundle, error) {
	td, err := spiffeid.TrustDomainFromString(j.TrustDomain)
	if err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("trust domain: %w", err)
	}
	return registry.FederatedBundle{TrustDomain: td, Document: []byte(j.Document), UpdatedAt: j.UpdatedAt}, nil
}
