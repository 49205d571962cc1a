package kit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// maxTokenSize bounds the tokens the kit reads.
const maxTokenSize = 64 << 10

// jwtAlgs are the algorithms JWT rule 3 allows.
var jwtAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}

// JWTSVID is a JWT-SVID to check.
type JWTSVID struct {
	// Token is the compact serialization.
	Token string
	// Keys are the JWT-SVID keys by trust domain name ("example.org").
	// Nil skips the signature (JWT step S7).
	Keys map[string][]jose.JSONWebKey
	// Audience, when set, must be in aud (JWT rule 7a).
	Audience string
	// Name prefixes the subjects of the results.
	Name string
}

// CheckJWTSVID checks a JWT-SVID against the JWT rules at time now, and
// adds the results to r. It returns the token's claims when they parse.
func (r *Report) CheckJWTSVID(svid JWTSVID, now time.Time) map[string]any {
	name := svid.Name
	if name == "" {
		name = "token"
	}
	header, claims, ok := r.splitCompact("JWT rule 1", name, svid.Token)
	if !ok {
		return nil
	}
	extra := extraHeaderParams(header)
	r.add("JWT rule 2", name, len(extra) == 0, "header parameters beyond alg, kid, typ: %v", extra)
	alg, _ := header["alg"].(string)
	algOK := slices.Contains(jwtAlgs, alg)
	r.add("JWT rule 3", name, algOK, "alg %q", header["alg"])
	kid, _ := header["kid"].(string)
	r.add("JWT rule 4", name, kid != "", "kid %q", header["kid"])
	if typ, present := header["typ"]; present {
		r.add("JWT rule 5", name, typ == "JWT" || typ == "JOSE", "typ %q", typ)
	} else {
		r.add("JWT rule 5", name, true, "no typ")
	}

	sub, _ := claims["sub"].(string)
	id, err := spiffeid.FromString(sub)
	if err != nil {
		r.add("JWT rule 6", name, false, "sub %q is not a SPIFFE ID: %v", claims["sub"], err)
	} else {
		r.add("JWT rule 6", name, true, "sub %s", id)
	}
	aud := audiences(claims["aud"])
	switch {
	case len(aud) == 0:
		r.add("JWT rule 7a", name, false, "aud %v has no value", claims["aud"])
		r.na("JWT rule 7b", name, "no audience")
	case svid.Audience != "" && !slices.Contains(aud, svid.Audience):
		r.add("JWT rule 7a", name, false, "aud %q lacks the expected %q", aud, svid.Audience)
		r.add("JWT rule 7b", name, len(aud) == 1, "%d audiences", len(aud))
	default:
		r.add("JWT rule 7a", name, true, "aud %q", aud)
		r.add("JWT rule 7b", name, len(aud) == 1, "%d audiences", len(aud))
	}
	switch exp, ok := claims["exp"].(json.Number); {
	case !ok:
		r.add("JWT rule 8", name, false, "exp %v is not a number", claims["exp"])
	default:
		f, err := exp.Float64()
		at := time.Unix(0, int64(f*1e9))
		r.add("JWT rule 8", name, err == nil && at.After(now), "exp %s (%s), now %s", exp, at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	r.checkSignature(name, svid, alg, algOK, kid, id)
	return claims
}

// splitCompact checks that token is a JWS in compact serialization whose
// header and payload are JSON objects (JWT rule 1, or WIT rule 13: the
// rule given), and decodes the header and the claims.
func (r *Report) splitCompact(rule, name, token string) (header, claims map[string]any, ok bool) {
	if len(token) > maxTokenSize {
		r.add(rule, name, false, "token of %d bytes, more than the kit reads (%d)", len(token), maxTokenSize)
		return nil, nil, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		r.add(rule, name, false, "%d dot-separated parts, not 3 (a JWS in JSON serialization, or a JWE, is neither a JWT-SVID nor a WIT-SVID)", len(parts))
		return nil, nil, false
	}
	var decoded [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			r.add(rule, name, false, "part %d is not unpadded base64url: %v", i, err)
			return nil, nil, false
		}
		decoded[i] = b
	}
	if err := decodeObject(decoded[0], &header); err != nil {
		r.add(rule, name, false, "the header is not a JSON object: %v", err)
		return nil, nil, false
	}
	if err := decodeObject(decoded[1], &claims); err != nil {
		r.add(rule, name, false, "the payload is not a JSON object: %v", err)
		return nil, nil, false
	}
	r.add(rule, name, true, "compact serialization, %d-byte signature", len(decoded[2]))
	return header, claims, true
}

// checkSignature checks JWT step S7.
func (r *Report) checkSignature(name string, svid JWTSVID, alg string, algOK bool, kid string, id spiffeid.ID) {
	switch {
	case svid.Keys == nil:
		r.na("JWT step S7", name, "no keys given")
		return
	case !algOK:
		r.na("JWT step S7", name, "alg %q is not allowed (JWT rule 3): nothing to verify", alg)
		return
	case id.IsZero():
		r.na("JWT step S7", name, "no SPIFFE ID in sub to choose keys by")
		return
	}
	keys := svid.Keys[id.TrustDomain().Name()]
	if len(keys) == 0 {
		r.add("JWT step S7", name, false, "no JWT-SVID keys for trust domain %q", id.TrustDomain().Name())
		return
	}
	jws, err := jose.ParseSigned(svid.Token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		r.add("JWT step S7", name, false, "does not parse as a JWS: %v", err)
		return
	}
	tried := 0
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		tried++
		if _, err := jws.Verify(k.Key); err == nil {
			r.add("JWT step S7", name, true, "%s signature verified with key %q of %q", alg, k.KeyID, id.TrustDomain().Name())
			return
		}
	}
	if tried == 0 {
		r.add("JWT step S7", name, false, "no key %q among the %d keys of %q", kid, len(keys), id.TrustDomain().Name())
		return
	}
	r.add("JWT step S7", name, false, "the %s signature verifies with none of the %d candidate keys of %q", alg, tried, id.TrustDomain().Name())
}

// audiences returns aud as a list: a string, or an array of strings.
func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		if a != "" {
			return []string{a}
		}
	case []any:
		var out []string
		for _, x := range a {
			s, ok := x.(string)
			if !ok || s == "" {
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}

// decodeObject decodes one JSON object, numbers kept as json.Number.
func decodeObject(b []byte, v *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if *v == nil {
		return fmt.Errorf("null")
	}
	if dec.More() {
		return fmt.Errorf("data after the object")
	}
	return nil
}

// ParseJWKSet reads a JWK Set (such as a Workload API JWT bundle, or the
// jwt-svid keys of a SPIFFE bundle document) into JWT-SVID keys: keys
// whose use is absent or jwt-svid. Keys that do not parse are skipped.
func ParseJWKSet(doc []byte) ([]jose.JSONWebKey, error) {
	return parseKeys(doc, "jwt-svid")
}

// ParseWITKeySet reads a JWK Set (such as a Workload API WIT bundle, or
// the wit-svid keys of a SPIFFE bundle document) into WIT-SVID keys: keys
// whose use is absent or wit-svid. Keys that do not parse are skipped.
func ParseWITKeySet(doc []byte) ([]jose.JSONWebKey, error) {
	return parseKeys(doc, "wit-svid")
}

// parseKeys reads the keys of a JWK Set whose use is absent or use.
func parseKeys(doc []byte, use string) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("kit: not a JWK Set: %w", err)
	}
	var out []jose.JSONWebKey
	for _, raw := range set.Keys {
		var probe struct {
			Use string `json:"use"`
		}
		if json.Unmarshal(raw, &probe) != nil || (probe.Use != "" && probe.Use != use) {
			continue
		}
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) == nil && k.Valid() {
			out = append(out, k)
		}
	}
	return out, nil
}

// extraHeaderParams returns the header parameters beyond alg, kid and typ,
// sorted.
func extraHeaderParams(header map[string]any) []string {
	var extra []string
	for k := range header {
		if k != "alg" && k != "kid" && k != "typ" {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return extra
}
