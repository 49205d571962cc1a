package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Selector is the wire form of an attest.Selector.
type Selector struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Entry is the wire form of a registry.Entry. Absent times are zero.
type Entry struct {
	ID            string     `json:"id,omitempty"`
	SPIFFEID      string     `json:"spiffe_id"`
	ParentID      string     `json:"parent_id"`
	Selectors     []Selector `json:"selectors"`
	X509SVIDTTL   string     `json:"x509_svid_ttl,omitempty"`
	JWTSVIDTTL    string     `json:"jwt_svid_ttl,omitempty"`
	DNSNames      []string   `json:"dns_names,omitempty"`
	FederatesWith []string   `json:"federates_with,omitempty"`
	Hint          string     `json:"hint,omitempty"`
	Downstream    bool       `json:"downstream,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"` // none when absent
	Revision      int64      `json:"revision,omitempty"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
}

// Agent is the wire form of a registry.Agent.
type Agent struct {
	ID                   string     `json:"id"`
	AttestorType         string     `json:"attestor_type"`
	Selectors            []Selector `json:"selectors"`
	SerialNumber         string     `json:"serial_number"`
	PreviousSerialNumber string     `json:"previous_serial_number,omitempty"`
	ExpiresAt            time.Time  `json:"expires_at"`
	CanReattest          bool       `json:"can_reattest"`
	Banned               bool       `json:"banned"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
}

// Bundle is the wire form of a registry.FederatedBundle: its document
// travels as JSON, not as a string.
type Bundle struct {
	TrustDomain string          `json:"trust_domain"`
	Document    json.RawMessage `json:"document"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// TokenRequest asks for a join token (POST /v1/tokens).
type TokenRequest struct {
	TTL string `json:"ttl"`
	// SPIFFEID is the node alias of the admitted agent.
	SPIFFEID string `json:"spiffe_id,omitempty"`
}

// Token is the answer to a TokenRequest.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Count is the answer to a count of entries or agents.
type Count struct {
	Count int `json:"count"`
}

// BundleDeleted is the answer to the deletion of a federated bundle.
type BundleDeleted struct {
	TrustDomain string `json:"trust_domain"`
	Mode        string `json:"mode"`
	// Entries is how many entries were deleted or dissociated.
	Entries int `json:"entries"`
}

// Status is what a server says of itself (GET /v1/status).
type Status struct {
	TrustDomain string `json:"trust_domain"`
	Healthy     bool   `json:"healthy"`
	Reason      string `json:"reason,omitempty"`
}

// Error is the body of every answer that is not a success.
type Error struct {
	Error string `json:"error"`
	// Code names the error's kind for clients: one of the Code* constants.
	Code string `json:"code,omitempty"`
}

// Error codes carried beside the message, so that a client can tell 409
// conflicts from 409 duplicates without reading the message.
const (
	CodeInvalid          = "invalid"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeAlreadyExists    = "already_exists"
	CodePermissionDenied = "permission_denied"
	// CodeFailedPrecondition: the request is valid, but the state of what
	// it names forbids it (tainting the active authority).
	CodeFailedPrecondition = "failed_precondition"
	// CodeUnavailable: the server's stores did not answer in time.
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
)

func selectorsToJSON(ss []attest.Selector) []Selector {
	out := make([]Selector, len(ss))
	for i, s := range ss {
		out[i] = Selector{Type: s.Type, Value: s.Value}
	}
	return out
}

func selectorsFromJSON(ss []Selector) []attest.Selector {
	if len(ss) == 0 {
		return nil
	}
	out := make([]attest.Selector, len(ss))
	for i, s := range ss {
		out[i] = attest.Selector{Type: s.Type, Value: s.Value}
	}
	return out
}

// FormatDuration is the wire form of d: "" for zero.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// ParseDuration parses the duration s of the named field; "" is zero.
func ParseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return d, nil
}

// OptionalID parses the SPIFFE ID s of the named field; "" is the zero ID.
func OptionalID(field, s string) (spiffeid.ID, error) {
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

// EntryToJSON converts an entry to its wire form.
func EntryToJSON(e registry.Entry) Entry {
	j := Entry{
		ID:          e.ID,
		Selectors:   selectorsToJSON(e.Selectors),
		X509SVIDTTL: FormatDuration(e.X509SVIDTTL),
		JWTSVIDTTL:  FormatDuration(e.JWTSVIDTTL),
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

// EntryFromJSON converts the wire form; errors name the field. It checks
// the syntax of IDs and durations only, not the registry's rules.
func EntryFromJSON(j Entry) (registry.Entry, error) {
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
	if e.SPIFFEID, err = OptionalID("spiffe_id", j.SPIFFEID); err != nil {
		return registry.Entry{}, err
	}
	if e.ParentID, err = OptionalID("parent_id", j.ParentID); err != nil {
		return registry.Entry{}, err
	}
	if e.X509SVIDTTL, err = ParseDuration("x509_svid_ttl", j.X509SVIDTTL); err != nil {
		return registry.Entry{}, err
	}
	if e.JWTSVIDTTL, err = ParseDuration("jwt_svid_ttl", j.JWTSVIDTTL); err != nil {
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

// AgentToJSON converts an agent's record to its wire form.
func AgentToJSON(a registry.Agent) Agent {
	return Agent{
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

// AgentFromJSON converts the wire form of an agent's record.
func AgentFromJSON(j Agent) (registry.Agent, error) {
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

// BundleToJSON converts a federated bundle to its wire form. A stored
// document that is not JSON fails: it could not travel as one.
func BundleToJSON(b registry.FederatedBundle) (Bundle, error) {
	if !json.Valid(b.Document) {
		return Bundle{}, fmt.Errorf("admin: stored bundle of %q is not JSON", b.TrustDomain)
	}
	return Bundle{TrustDomain: b.TrustDomain.Name(), Document: b.Document, UpdatedAt: b.UpdatedAt}, nil
}

// BundleFromJSON converts the wire form of a federated bundle.
func BundleFromJSON(j Bundle) (registry.FederatedBundle, error) {
	td, err := spiffeid.TrustDomainFromString(j.TrustDomain)
	if err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("trust domain: %w", err)
	}
	return registry.FederatedBundle{TrustDomain: td, Document: []byte(j.Document), UpdatedAt: j.UpdatedAt}, nil
}
