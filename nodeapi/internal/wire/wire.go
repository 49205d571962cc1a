package wire

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// EntryToPB converts an entry to its wire form.
func EntryToPB(e registry.Entry) *nodepb.Entry {
	out := &nodepb.Entry{
		Id:                 e.ID,
		SpiffeId:           e.SPIFFEID.String(),
		ParentId:           e.ParentID.String(),
		X509SvidTtlSeconds: int64(e.X509SVIDTTL / time.Second),
		JwtSvidTtlSeconds:  int64(e.JWTSVIDTTL / time.Second),
		DnsNames:           e.DNSNames,
		Hint:               e.Hint,
		Revision:           e.Revision,
		CreatedAtUnixMicro: e.CreatedAt.UnixMicro(),
		UpdatedAtUnixMicro: e.UpdatedAt.UnixMicro(),
	}
	if !e.ExpiresAt.IsZero() {
		out.ExpiresAtUnix = e.ExpiresAt.Unix()
	}
	out.Selectors = make([]*nodepb.Selector, len(e.Selectors))
	for i, s := range e.Selectors {
		out.Selectors[i] = &nodepb.Selector{Type: s.Type, Value: s.Value}
	}
	for _, td := range e.FederatesWith {
		out.FederatesWith = append(out.FederatesWith, td.Name())
	}
	return out
}

// EntryFromPB converts and validates an entry received from a server.
// Its errors begin with "nodeapi: ", the package that receives entries.
func EntryFromPB(p *nodepb.Entry) (registry.Entry, error) {
	if p == nil {
		return registry.Entry{}, fmt.Errorf("nodeapi: empty entry")
	}
	if !registry.ValidEntryID(p.Id) {
		return registry.Entry{}, fmt.Errorf("nodeapi: invalid entry ID %q", Truncate(p.Id))
	}
	id, err := spiffeid.FromString(p.SpiffeId)
	if err != nil {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: %w", p.Id, err)
	}
	parent, err := spiffeid.FromString(p.ParentId)
	if err != nil {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: parent: %w", p.Id, err)
	}
	e := registry.Entry{
		ID:          p.Id,
		SPIFFEID:    id,
		ParentID:    parent,
		X509SVIDTTL: time.Duration(p.X509SvidTtlSeconds) * time.Second,
		JWTSVIDTTL:  time.Duration(p.JwtSvidTtlSeconds) * time.Second,
		DNSNames:    p.DnsNames,
		Hint:        p.Hint,
		Revision:    p.Revision,
		CreatedAt:   time.UnixMicro(p.CreatedAtUnixMicro).UTC(),
		UpdatedAt:   time.UnixMicro(p.UpdatedAtUnixMicro).UTC(),
	}
	if p.X509SvidTtlSeconds < 0 || p.JwtSvidTtlSeconds < 0 || p.X509SvidTtlSeconds > maxTTLSeconds || p.JwtSvidTtlSeconds > maxTTLSeconds {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: TTL out of range", p.Id)
	}
	if x := p.ExpiresAtUnix; x != 0 {
		if x < registry.MinExpiry.Unix() || x > registry.MaxExpiry.Unix() {
			return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: expiry %d out of range", p.Id, x)
		}
		e.ExpiresAt = time.Unix(x, 0).UTC()
	}
	if len(p.Selectors) > registry.MaxSelectors {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: too many selectors", p.Id)
	}
	for _, s := range p.Selectors {
		if s == nil {
			return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: empty selector", p.Id)
		}
		e.Selectors = append(e.Selectors, attest.Selector{Type: s.Type, Value: s.Value})
	}
	if len(p.FederatesWith) > registry.MaxFederatesWith {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: too many federated trust domains", p.Id)
	}
	for _, name := range p.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: federates with: %w", p.Id, err)
		}
		e.FederatesWith = append(e.FederatesWith, td)
	}
	if err := e.Validate(); err != nil {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: %w", p.Id, err)
	}
	if e.Revision < 1 {
		return registry.Entry{}, fmt.Errorf("nodeapi: entry %s: revision must be positive", p.Id)
	}
	return e, nil
}

// maxTTLSeconds bounds entry TTLs on the wire: ten years.
const maxTTLSeconds = 10 * 365 * 24 * 3600

// ChainToDER returns the DER of each certificate of chain, as the wire
// carries a chain.
func ChainToDER(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

// Truncate shortens a string a peer sent to at most 64 bytes (and an
// ellipsis) for an error message, so that what a peer sends bounds what
// its errors cost to log.
func Truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
