package kit

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/go-jose/go-jose/v4"
)

// Bundle limits: a document past them is not read.
const maxBundleSize = 4 << 20

// keyParams are the members RFC 7518 defines for each public key type.
var keyParams = map[string][]string{
	"EC":  {"crv", "x", "y"},
	"RSA": {"n", "e"},
	"OKP": {"crv", "x"},
}

// privateParams are members that only private or symmetric keys have.
var privateParams = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// bundleDoc is a SPIFFE bundle document read member by member, so that
// every rule can look at what is there and what is not.
type bundleDoc struct {
	members map[string]json.RawMessage
	keys    []map[string]json.RawMessage
}

// CheckBundle checks a SPIFFE bundle document (Bundle rules 7 to 17, and
// the X509 rules of signing certificates on its x509-svid authorities),
// and adds the results to r. name names the document in the results.
func (r *Report) CheckBundle(name string, doc []byte) {
	d, ok := r.readBundle(name, doc)
	if !ok {
		return
	}
	r.checkSequence(name, d)
	if raw, ok := d.members["spiffe_refresh_hint"]; ok {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		r.add("Bundle rule 9", name, err == nil && n > 0, "spiffe_refresh_hint %s", raw)
	} else {
		r.add("Bundle rule 9", name, false, "no spiffe_refresh_hint")
	}
	kids := map[string]string{} // kid → the use that first had it
	for i, key := range d.keys {
		subject := fmt.Sprintf("%s keys[%d]", name, i)
		use := stringMember(key, "use")
		kty := r.checkJWKMembers(subject, key, use != "x509-svid")
		switch use {
		case "x509-svid":
			r.add("Bundle rule 13", subject, true, "use %q", use)
			r.checkX509JWK(subject, key, kty)
		case "jwt-svid", "wit-svid":
			r.add("Bundle rule 13", subject, true, "use %q", use)
			kid := stringMember(key, "kid")
			rule := "Bundle rule 16"
			if use == "wit-svid" {
				rule = "Bundle rule 17"
			}
			switch prev, dup := kids[kid]; {
			case kid == "":
				r.add(rule, subject, false, "%s key without kid", use)
			case dup && (use == "wit-svid" || prev == "wit-svid" || prev == use):
				r.add(rule, subject, false, "kid %q also on an earlier %s key", kid, prev)
			default:
				r.add(rule, subject, true, "kid %q", kid)
				kids[kid] = use
			}
		default:
			r.add("Bundle rule 13", subject, false, "use %q is none of x509-svid, jwt-svid, wit-svid", use)
		}
	}
}

// readBundle parses the document's top level and checks Bundle rule 7.
func (r *Report) readBundle(name string, doc []byte) (*bundleDoc, bool) {
	if len(doc) > maxBundleSize {
		r.add("Bundle rule 7", name, false, "document of %d bytes, more than the kit reads (%d)", len(doc), maxBundleSize)
		return nil, false
	}
	d := &bundleDoc{}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&d.members); err != nil || d.members == nil {
		r.add("Bundle rule 7", name, false, "not a JSON object: %v", err)
		return nil, false
	}
	if dec.More() {
		r.add("Bundle rule 7", name, false, "data after the JSON object")
		return nil, false
	}
	raw, ok := d.members["keys"]
	if !ok {
		r.add("Bundle rule 7", name, false, "no keys member")
		return nil, false
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		r.add("Bundle rule 7", name, false, "keys is not an array: %s", truncate(raw))
		return nil, false
	}
	for i, k := range keys {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(k, &m); err != nil || m == nil {
			r.add("Bundle rule 7", name, false, "keys[%d] is not a JSON object: %s", i, truncate(k))
			return nil, false
		}
		d.keys = append(d.keys, m)
	}
	r.add("Bundle rule 7", name, true, "keys array of %d JWKs", len(d.keys))
	return d, true
}

// checkSequence checks Bundle rule 8a.
func (r *Report) checkSequence(name string, d *bundleDoc) {
	raw, ok := d.members["spiffe_sequence"]
	if !ok {
		r.add("Bundle rule 8a", name, false, "no spiffe_sequence")
		return
	}
	_, err := strconv.ParseUint(string(raw), 10, 64)
	r.add("Bundle rule 8a", name, err == nil, "spiffe_sequence %s", raw)
}

// CheckBundleUpdate checks Bundle rule 8b between two versions of one
// trust domain's bundle document, prev published before next: when the
// keys differ, the sequence must have grown.
func (r *Report) CheckBundleUpdate(name string, prev, next []byte) {
	var p, n struct {
		Sequence *uint64          `json:"spiffe_sequence"`
		Keys     []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(prev, &p); err != nil {
		r.na("Bundle rule 8b", name, "the earlier document does not parse: %v", err)
		return
	}
	if err := json.Unmarshal(next, &n); err != nil {
		r.na("Bundle rule 8b", name, "the later document does not parse: %v", err)
		return
	}
	changed := !slices.Equal(canonicalKeys(p.Keys), canonicalKeys(n.Keys))
	switch {
	case p.Sequence == nil || n.Sequence == nil:
		r.na("Bundle rule 8b", name, "no spiffe_sequence to compare (see Bundle rule 8a)")
	case !changed:
		r.add("Bundle rule 8b", name, *n.Sequence >= *p.Sequence, "keys unchanged, sequence %d then %d", *p.Sequence, *n.Sequence)
	default:
		r.add("Bundle rule 8b", name, *n.Sequence > *p.Sequence, "keys changed, sequence %d then %d", *p.Sequence, *n.Sequence)
	}
}

// canonicalKeys returns the keys as sorted JSON strings, to compare two
// documents' keys as sets.
func canonicalKeys(keys []map[string]any) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		b, _ := json.Marshal(k) // maps marshal with sorted keys; values came from JSON
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// checkJWKMembers checks Bundle rules 12 and 14 on one JWK; allowKid says
// whether kid belongs to the key's use. It returns the kty.
func (r *Report) checkJWKMembers(subject string, key map[string]json.RawMessage, allowKid bool) string {
	kty := stringMember(key, "kty")
	if kty == "" {
		r.add("Bundle rule 12", subject, false, "no kty")
	} else {
		r.add("Bundle rule 12", subject, true, "kty %q", kty)
	}
	params, known := keyParams[kty]
	if !known {
		// Without a known kty no member is a key parameter or an extra:
		// Bundle rule 12 has the key.
		params = []string{"crv", "x", "y", "n", "e"}
	}
	var extra, private []string
	for m := range key {
		switch {
		case slices.Contains(privateParams, m):
			private = append(private, m)
		case m == "kty" || m == "use" || m == "x5c" || (m == "kid" && allowKid) || slices.Contains(params, m):
		case m == "kid":
			// A kid where the standard forbids one is Bundle rule 15's.
		default:
			extra = append(extra, m)
		}
	}
	sort.Strings(extra)
	sort.Strings(private)
	switch {
	case len(private) > 0:
		r.add("Bundle rule 14", subject, false, "private key members %v", private)
	case len(extra) > 0:
		r.add("Bundle rule 14", subject, false, "extra members %v", extra)
	default:
		r.add("Bundle rule 14", subject, true, "no extra members")
	}
	return kty
}

// checkX509JWK checks Bundle rule 15 and the X509 rules of its authority.
func (r *Report) checkX509JWK(subject string, key map[string]json.RawMessage, kty string) {
	if _, ok := key["kid"]; ok {
		r.add("Bundle rule 15", subject, false, "x509-svid key with a kid")
		return
	}
	var x5c []string
	if err := json.Unmarshal(key["x5c"], &x5c); err != nil || len(x5c) != 1 {
		r.add("Bundle rule 15", subject, false, "x5c holds %d certificates (%v), not exactly one", len(x5c), err)
		return
	}
	der, err := base64.StdEncoding.DecodeString(x5c[0])
	if err != nil {
		r.add("Bundle rule 15", subject, false, "x5c[0] is not standard base64: %v", err)
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		r.add("Bundle rule 15", subject, false, "x5c[0] is not a certificate: %v", err)
		return
	}
	raw, _ := json.Marshal(key)
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		r.add("Bundle rule 15", subject, false, "the %s key parameters do not describe x5c[0]'s public key: %v", kty, err)
		return
	}
	eq, ok := jwk.Key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(cert.PublicKey) {
		r.add("Bundle rule 15", subject, false, "the %s key parameters do not describe x5c[0]'s public key", kty)
		return
	}
	r.add("Bundle rule 15", subject, true, "no kid, one x5c certificate matching the key")
	r.checkSigningCert(subject+" x5c[0]", cert, true)
}

// CheckJWTKeySet checks a JWK Set served as a Workload API JWT bundle:
// every key sets kty and makes a public key (Bundle rule 12), carries no
// private or foreign member (Bundle rule 14), sets a unique kid (Bundle
// rule 16), and is a JWT-SVID key (WAPI rule 13). It returns the keys that
// parsed.
func (r *Report) CheckJWTKeySet(name string, doc []byte) []jose.JSONWebKey {
	return r.checkKeySet(keySetRules{use: "jwt-svid", useRule: "WAPI rule 13", kidRule: "Bundle rule 16", members: true}, name, doc)
}

// keySetRules are the rules a Workload API bundle of JWT-SVID or WIT-SVID
// keys is checked against.
type keySetRules struct {
	use     string // the only use a key may declare, beside none
	useRule string // the rule of the use, and of a document that is no JWK Set
	kidRule string // the rule of a kid unique in the set
	members bool   // whether each key's members are checked (Bundle rule 14)
}

// checkKeySet checks a JWK Set of JWT-SVID or WIT-SVID keys against rules:
// each key is a public key with a kty (Bundle rule 12), a kid unique in the
// set, the use, and no x5c. It returns the keys that parsed.
func (r *Report) checkKeySet(rules keySetRules, name string, doc []byte) []jose.JSONWebKey {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil || set.Keys == nil {
		r.add(rules.useRule, name, false, "not a JWK Set: %v", err)
		return nil
	}
	var out []jose.JSONWebKey
	seen := map[string]bool{}
	for i, raw := range set.Keys {
		subject := fmt.Sprintf("%s keys[%d]", name, i)
		var key map[string]json.RawMessage
		if err := json.Unmarshal(raw, &key); err != nil || key == nil {
			r.add("Bundle rule 12", subject, false, "not a JSON object")
			continue
		}
		kty := stringMember(key, "kty")
		if rules.members {
			kty = r.checkJWKMembers(subject, key, true)
		}
		use := stringMember(key, "use")
		_, x5c := key["x5c"]
		r.add(rules.useRule, subject, (use == "" || use == rules.use) && !x5c, "use %q, x5c present %v", use, x5c)
		switch kid := stringMember(key, "kid"); {
		case kid == "":
			r.add(rules.kidRule, subject, false, "%s key without kid", rules.use)
		case seen[kid]:
			r.add(rules.kidRule, subject, false, "kid %q twice", kid)
		default:
			seen[kid] = true
			r.add(rules.kidRule, subject, true, "kid %q", kid)
		}
		var jwk jose.JSONWebKey
		err := jwk.UnmarshalJSON(raw)
		if ok := err == nil && jwk.Valid() && jwk.IsPublic() && kty != ""; !ok {
			r.add("Bundle rule 12", subject, false, "the %q key does not parse as a public key: %v", kty, err)
			continue
		}
		if !rules.members { // checkJWKMembers reported the kty
			r.add("Bundle rule 12", subject, true, "kty %q, a public key", kty)
		}
		out = append(out, jwk)
	}
	return out
}

// stringMember returns a string member of a JSON object, or "".
func stringMember(m map[string]json.RawMessage, name string) string {
	var s string
	if raw, ok := m[name]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// truncate shortens raw JSON for evidence.
func truncate(raw []byte) string {
	if len(raw) > 80 {
		return string(raw[:80]) + "..."
	}
	return string(raw)
}
