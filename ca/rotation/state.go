package rotation

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// State is the place of an authority (an X.509 CA, a JWT key or a WIT key)
// in its rotation.
type State string

// The states of an authority. Every authority in one of them is in the trust
// bundle.
const (
	// StatePrepared: the authority is published in the bundle but signs
	// nothing yet, so that relying parties learn it ahead of use.
	StatePrepared State = "prepared"

	// StateActive: the authority signs. There is one active X.509 CA, one
	// active JWT key and, with Config.WITKeys, one active WIT key.
	StateActive State = "active"

	// StateOld: the authority no longer signs but stays in the bundle until
	// its NotAfter, after which nothing it signed is valid any more.
	StateOld State = "old"
)

func (s State) valid() bool {
	return s == StatePrepared || s == StateActive || s == StateOld
}

// kind tells X.509 CAs from JWT keys and WIT keys; all rotate by the same
// rules.
type kind int

const (
	kindX509 kind = iota
	kindJWT
	kindWIT
)

var kinds = [...]kind{kindX509, kindJWT, kindWIT}

func (k kind) String() string {
	switch k {
	case kindX509:
		return "X.509 CA"
	case kindJWT:
		return "JWT key"
	}
	return "WIT key"
}

// keyed reports whether authorities of kind k are bare keys known by a kid
// (JWT and WIT keys), rather than X.509 CAs.
func (k kind) keyed() bool { return k != kindX509 }

// slot is one authority and its rotation state. Slots are copied before they
// are changed: a published state is never modified.
type slot struct {
	keyID     string // in the KeyManager
	state     State
	tainted   bool
	notBefore time.Time
	notAfter  time.Time

	// X.509 CAs.
	chain []*x509.Certificate // chain[0] is the CA certificate, then intermediates
	roots []*x509.Certificate // trust anchors published in the bundle
	x509  *ca.X509Authority   // set when prepared or active

	// JWT and WIT keys.
	kid string
	pub crypto.PublicKey
	jwt *ca.JWTAuthority // JWT keys: set when prepared or active
	wit *ca.WITAuthority // WIT keys: set when prepared or active
}

// id is the operator-facing identifier of the authority: the lowercase hex
// SubjectKeyId of an X.509 CA (as openssl prints it), the kid of a JWT or
// WIT key.
func (s *slot) id() string {
	if s.kid != "" {
		return s.kid
	}
	return x509AuthorityID(s.chain[0])
}

func x509AuthorityID(cert *x509.Certificate) string {
	if len(cert.SubjectKeyId) > 0 {
		return hex.EncodeToString(cert.SubjectKeyId)
	}
	id, err := ca.KeyID(cert.PublicKey)
	if err != nil {
		return hex.EncodeToString(cert.SerialNumber.Bytes())
	}
	return id
}

// state is everything the journal records.
type state struct {
	seq   uint64 // bundle sequence number
	slots [len(kinds)][]*slot
}

func (st *state) clone() *state {
	c := &state{seq: st.seq}
	for k := range st.slots {
		c.slots[k] = make([]*slot, len(st.slots[k]))
		for i, s := range st.slots[k] {
			cp := *s
			c.slots[k][i] = &cp
		}
	}
	return c
}

// find returns the first slot of kind k in state s, or nil.
func (st *state) find(k kind, s State) *slot {
	for _, sl := range st.slots[k] {
		if sl.state == s {
			return sl
		}
	}
	return nil
}

func (st *state) byID(k kind, id string) *slot {
	for _, sl := range st.slots[k] {
		if sl.id() == id {
			return sl
		}
	}
	return nil
}

func (st *state) remove(k kind, target *slot) {
	out := st.slots[k][:0]
	for _, sl := range st.slots[k] {
		if sl != target {
			out = append(out, sl)
		}
	}
	st.slots[k] = out
}

// bundle builds the trust bundle: the roots of every X.509 CA (upstream roots
// or the self-signed CA certificates) and the public key of every JWT key
// and WIT key (use "wit-svid", WIT rule 16), in whatever state.
func buildBundle(td spiffeid.TrustDomain, st *state, refreshHint time.Duration) *spiffebundle.Bundle {
	b := spiffebundle.New(td)
	for _, s := range st.slots[kindX509] {
		for _, root := range s.roots {
			if !b.HasX509Authority(root) {
				b.AddX509Authority(root)
			}
		}
	}
	for _, s := range st.slots[kindJWT] {
		// Key IDs are unique, as load and mint check, so this cannot fail.
		_ = b.AddJWTAuthority(s.kid, s.pub)
	}
	for _, s := range st.slots[kindWIT] {
		// Unique across JWT and WIT keys too (WIT rule 16), as load and
		// mint check.
		_ = b.AddWITAuthority(s.kid, s.pub)
	}
	b.SetSequenceNumber(st.seq)
	b.SetRefreshHint(refreshHint)
	return b
}

// sameKeys reports whether two bundles hold the same keys, whatever their
// sequence numbers.
func sameKeys(a, b *spiffebundle.Bundle) bool {
	if a == nil || b == nil {
		return a == b
	}
	a, b = a.Clone(), b.Clone()
	a.ClearSequenceNumber()
	b.ClearSequenceNumber()
	return a.Equal(b)
}

// The journal document. The state is checksummed as raw bytes so that any
// change to it, including a truncation that still parses, is detected.
const journalVersion = 1

// Limits enforced on a journal and on forced rotations.
const (
	maxAuthorities = 32 // per kind
	maxChainLen    = 8
)

type journalDoc struct {
	Version  int             `json:"version"`
	Checksum string          `json:"sha256"`
	State    json.RawMessage `json:"state"`
}

type journalState struct {
	TrustDomain string        `json:"trust_domain"`
	Sequence    uint64        `json:"bundle_sequence"`
	X509CAs     []journalX509 `json:"x509_cas"`
	JWTKeys     []journalJWT  `json:"jwt_keys"`
	// WITKeys is left out when empty, so that the journal of a manager
	// without WIT keys reads as before.
	WITKeys []journalJWT `json:"wit_keys,omitempty"`
}

type journalX509 struct {
	KeyID   string   `json:"key_id"`
	State   State    `json:"state"`
	Tainted bool     `json:"tainted,omitempty"`
	Chain   [][]byte `json:"chain"`
	Roots   [][]byte `json:"roots"`
}

type journalJWT struct {
	KeyID     string    `json:"key_id"`
	KID       string    `json:"kid"`
	State     State     `json:"state"`
	Tainted   bool      `json:"tainted,omitempty"`
	PublicKey []byte    `json:"public_key"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

func encodeJournal(td spiffeid.TrustDomain, st *state) ([]byte, error) {
	js := journalState{
		TrustDomain: td.Name(),
		Sequence:    st.seq,
		X509CAs:     []journalX509{},
		JWTKeys:     []journalJWT{},
	}
	for _, s := range st.slots[kindX509] {
		e := journalX509{KeyID: s.keyID, State: s.state, Tainted: s.tainted}
		for _, c := range s.chain {
			e.Chain = append(e.Chain, c.Raw)
		}
		for _, c := range s.roots {
			e.Roots = append(e.Roots, c.Raw)
		}
		js.X509CAs = append(js.X509CAs, e)
	}
	for _, k := range []kind{kindJWT, kindWIT} {
		for _, s := range st.slots[k] {
			der, err := x509.MarshalPKIXPublicKey(s.pub)
			if err != nil {
				return nil, fmt.Errorf("cannot encode %s %q: %w", k, s.kid, err)
			}
			e := journalJWT{
				KeyID: s.keyID, KID: s.kid, State: s.state, Tainted: s.tainted,
				PublicKey: der, NotBefore: s.notBefore.UTC(), NotAfter: s.notAfter.UTC(),
			}
			if k == kindJWT {
				js.JWTKeys = append(js.JWTKeys, e)
			} else {
				js.WITKeys = append(js.WITKeys, e)
			}
		}
	}
	raw, err := json.Marshal(js)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return json.MarshalIndent(journalDoc{Version: journalVersion, Checksum: hex.EncodeToString(sum[:]), State: raw}, "", "  ")
}

// ErrCorruptJournal is returned by [New] when the journal cannot be used:
// it does not parse, its checksum or version is wrong, it belongs to another
// trust domain, or its content is inconsistent. The manager never starts
// afresh over such a journal, since that would orphan the trust domain's keys
// and change its bundle.
var ErrCorruptJournal = errors.New("rotation: corrupt journal")

// decodeJournal parses and validates a journal document. Signers are attached
// later, by the manager.
func decodeJournal(td spiffeid.TrustDomain, data []byte) (*state, error) {
	var doc journalDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptJournal, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrCorruptJournal)
	}
	if doc.Version != journalVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorruptJournal, doc.Version)
	}
	// The checksum covers the compact form of the state, so that
	// reformatting the document does not break it but any change does.
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc.State); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptJournal, err)
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != doc.Checksum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptJournal)
	}
	var js journalState
	dec = json.NewDecoder(bytes.NewReader(doc.State))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&js); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptJournal, err)
	}
	st, err := journalToState(td, &js)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptJournal, err)
	}
	return st, nil
}

func journalToState(td spiffeid.TrustDomain, js *journalState) (*state, error) {
	if js.TrustDomain != td.Name() {
		return nil, fmt.Errorf("journal is for trust domain %q, not %q", js.TrustDomain, td.Name())
	}
	if len(js.X509CAs) > maxAuthorities || len(js.JWTKeys) > maxAuthorities || len(js.WITKeys) > maxAuthorities {
		return nil, errors.New("too many authorities")
	}
	st := &state{seq: js.Sequence}
	keyIDs := make(map[string]bool)
	checkKeyID := func(id string) error {
		if err := ca.ValidateKeyID(id); err != nil {
			return err
		}
		if keyIDs[id] {
			return fmt.Errorf("key ID %q is used twice", id)
		}
		keyIDs[id] = true
		return nil
	}
	for i, e := range js.X509CAs {
		if err := checkKeyID(e.KeyID); err != nil {
			return nil, err
		}
		s, err := x509Slot(td, &e)
		if err != nil {
			return nil, fmt.Errorf("X.509 CA %d: %w", i, err)
		}
		st.slots[kindX509] = append(st.slots[kindX509], s)
	}
	// A kid is unique across JWT and WIT keys (WIT rule 16).
	kids := make(map[string]bool)
	for _, k := range []kind{kindJWT, kindWIT} {
		list := js.JWTKeys
		if k == kindWIT {
			list = js.WITKeys
		}
		for i, e := range list {
			if err := checkKeyID(e.KeyID); err != nil {
				return nil, err
			}
			if e.KID == "" || len(e.KID) > 256 || kids[e.KID] {
				return nil, fmt.Errorf("%s %d: missing, oversized or duplicate kid", k, i)
			}
			kids[e.KID] = true
			if !e.State.valid() {
				return nil, fmt.Errorf("%s %d: invalid state %q", k, i, e.State)
			}
			pub, err := x509.ParsePKIXPublicKey(e.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("%s %d: %w", k, i, err)
			}
			if !e.NotBefore.Before(e.NotAfter) {
				return nil, fmt.Errorf("%s %d: empty validity period", k, i)
			}
			st.slots[k] = append(st.slots[k], &slot{
				keyID: e.KeyID, kid: e.KID, state: e.State, tainted: e.Tainted,
				pub: pub, notBefore: e.NotBefore, notAfter: e.NotAfter,
			})
		}
	}
	for _, k := range kinds {
		var active, prepared int
		for _, s := range st.slots[k] {
			switch s.state {
			case StateActive:
				active++
			case StatePrepared:
				prepared++
			}
		}
		if active > 1 || prepared > 1 {
			return nil, fmt.Errorf("more than one active or prepared %s", k)
		}
	}
	if st.seq == 0 && (len(st.slots[kindX509]) > 0 || len(st.slots[kindJWT]) > 0 || len(st.slots[kindWIT]) > 0) {
		return nil, errors.New("bundle sequence number is zero")
	}
	return st, nil
}

func x509Slot(td spiffeid.TrustDomain, e *journalX509) (*slot, error) {
	if !e.State.valid() {
		return nil, fmt.Errorf("invalid state %q", e.State)
	}
	if len(e.Chain) == 0 || len(e.Chain) > maxChainLen || len(e.Roots) == 0 || len(e.Roots) > maxChainLen {
		return nil, errors.New("chain or roots missing or too long")
	}
	parse := func(ders [][]byte) ([]*x509.Certificate, error) {
		certs := make([]*x509.Certificate, 0, len(ders))
		for _, der := range ders {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			certs = append(certs, c)
		}
		return certs, nil
	}
	chain, err := parse(e.Chain)
	if err != nil {
		return nil, err
	}
	roots, err := parse(e.Roots)
	if err != nil {
		return nil, err
	}
	if err := checkCAChain(td, chain, roots); err != nil {
		return nil, err
	}
	return &slot{
		keyID: e.KeyID, state: e.State, tainted: e.Tainted,
		chain: chain, roots: roots,
		notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter,
	}, nil
}

// checkCAChain checks that chain[0] is a CA of trust domain td and that the
// chain links up, signature by signature, to one of roots.
func checkCAChain(td spiffeid.TrustDomain, chain, roots []*x509.Certificate) error {
	leaf := chain[0]
	if !leaf.BasicConstraintsValid || !leaf.IsCA {
		return errors.New("CA certificate is not a CA")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != td.IDString() {
		return fmt.Errorf("CA certificate does not carry the URI SAN %s", td.IDString())
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("chain certificate %d is not signed by the next: %w", i, err)
		}
	}
	last := chain[len(chain)-1]
	for _, r := range roots {
		if bytes.Equal(r.Raw, last.Raw) || last.CheckSignatureFrom(r) == nil {
			return nil
		}
	}
	return errors.New("chain does not lead to a root")
}
