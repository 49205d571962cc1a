package kit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// witType is the typ header of every WIT-SVID (WIT rule 2).
const witType = "wit+jwt"

// witLeeway is the clock skew allowed on nbf (WIT rule 8), go-spiffe's.
const witLeeway = time.Minute

// WITSVID is a WIT-SVID (a Workload Identity Token of the incubating
// WIT-SVID standard) to check.
type WITSVID struct {
	// Token is the compact serialization.
	Token string
	// Key is the private key served with the token, as a JWK (the
	// Workload API's wit_svid_key, or a file given to the wit mode);
	// empty when there is none to check (WIT rule 17c is then not
	// applicable).
	Key string
	// Keys are the WIT-SVID keys by trust domain name ("example.org").
	// Nil skips the signature (WIT rule 16b).
	Keys map[string][]jose.JSONWebKey
	// Name prefixes the subjects of the results.
	Name string
}

// CheckWITSVID checks a WIT-SVID against the WIT rules at time now, and
// adds the results to r: the header (kid, typ wit+jwt, alg), the claims
// (sub a SPIFFE ID, cnf.jwk a public key with an allowed alg, exp, nbf, no
// aud, iss), the signature with the key its kid names, and the private key
// served with it. It returns the token's claims when they parse.
func (r *Report) CheckWITSVID(svid WITSVID, now time.Time) map[string]any {
	name := svid.Name
	if name == "" {
		name = "token"
	}
	header, claims, ok := r.splitCompact("WIT rule 13", name, svid.Token)
	if !ok {
		return nil
	}
	kid, _ := header["kid"].(string)
	r.add("WIT rule 1", name, kid != "", "kid %q", header["kid"])
	typ, _ := header["typ"].(string)
	r.add("WIT rule 2", name, typ == witType, "typ %q", header["typ"])
	alg, _ := header["alg"].(string)
	algOK := slices.Contains(jwtAlgs, alg)
	r.add("WIT rule 3", name, algOK, "alg %q", header["alg"])
	extra := extraHeaderParams(header)
	r.add("WIT rule 4", name, len(extra) == 0, "header parameters beyond alg, kid, typ: %v", extra)

	sub, _ := claims["sub"].(string)
	id, err := spiffeid.FromString(sub)
	if err != nil {
		r.add("WIT rule 5", name, false, "sub %v is not a SPIFFE ID: %v", claims["sub"], err)
	} else {
		r.add("WIT rule 5", name, true, "sub %s", id)
	}
	cnf := r.checkCnf(name, claims["cnf"])
	r.checkWITTimes(name, claims, now)
	if aud, present := claims["aud"]; present {
		r.add("WIT rule 12", name, false, "aud %v is present", aud)
	} else {
		r.add("WIT rule 12", name, true, "no aud")
	}
	if iss, present := claims["iss"]; present {
		s, _ := iss.(string)
		u, err := url.Parse(s)
		r.add("WIT rule 11", name, err != nil || u.Scheme != "https", "iss %v", iss)
	} else {
		r.na("WIT rule 11", name, "no iss")
	}
	r.checkWITSignature(name, svid, alg, algOK, kid, id)
	r.checkWITKey(name, svid.Key, cnf)
	return claims
}

// checkCnf checks WIT rule 6 and returns the public key cnf.jwk binds.
func (r *Report) checkCnf(name string, v any) crypto.PublicKey {
	cnf, ok := v.(map[string]any)
	if !ok {
		r.add("WIT rule 6", name, false, "cnf %v is not a JSON object", v)
		return nil
	}
	member, ok := cnf["jwk"].(map[string]any)
	if !ok {
		r.add("WIT rule 6", name, false, "cnf has no jwk object: %v", cnf["jwk"])
		return nil
	}
	var private []string
	for m := range member {
		if slices.Contains(privateParams, m) {
			private = append(private, m)
		}
	}
	sort.Strings(private)
	raw, _ := json.Marshal(member) // decoded from JSON, so it encodes
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil || !jwk.Valid() {
		r.add("WIT rule 6", name, false, "cnf.jwk is not a usable key: %v", err)
		return nil
	}
	alg, _ := member["alg"].(string)
	switch {
	case len(private) > 0 || !jwk.IsPublic():
		r.add("WIT rule 6", name, false, "cnf.jwk carries private key members %v", private)
		return nil
	case !slices.Contains(jwtAlgs, alg) || !algFits(alg, jwk.Key):
		r.add("WIT rule 6", name, false, "cnf.jwk alg %q: not one of %v fitting its %s", member["alg"], jwtAlgs, keyType(jwk.Key))
		return jwk.Key
	}
	r.add("WIT rule 6", name, true, "cnf.jwk is a public %s key, alg %q", keyType(jwk.Key), alg)
	return jwk.Key
}

// checkWITTimes checks WIT rules 7 (exp) and 8 (nbf).
func (r *Report) checkWITTimes(name string, claims map[string]any, now time.Time) {
	if at, ok := numericDate(claims["exp"]); ok {
		r.add("WIT rule 7", name, at.After(now), "exp %s, now %s", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	} else {
		r.add("WIT rule 7", name, false, "exp %v is not a number", claims["exp"])
	}
	nbf, present := claims["nbf"]
	if !present {
		r.na("WIT rule 8", name, "no nbf")
		return
	}
	at, ok := numericDate(nbf)
	r.add("WIT rule 8", name, ok && !at.After(now.Add(witLeeway)), "nbf %v, now %s (leeway %s)", nbf, now.UTC().Format(time.RFC3339), witLeeway)
}

// numericDate reads a JSON number (decoded as json.Number) as a time.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(f*1e9)), true
}

// checkWITSignature checks WIT rule 16b: the signature verifies with the
// key the header's kid names in the WIT bundle of sub's trust domain.
func (r *Report) checkWITSignature(name string, svid WITSVID, alg string, algOK bool, kid string, id spiffeid.ID) {
	switch {
	case svid.Keys == nil:
		r.na("WIT rule 16b", name, "no WIT bundle given")
		return
	case !algOK:
		r.na("WIT rule 16b", name, "alg %q is not allowed (WIT rule 3): nothing to verify", alg)
		return
	case kid == "":
		r.na("WIT rule 16b", name, "no kid to choose the key by (WIT rule 1)")
		return
	case id.IsZero():
		r.na("WIT rule 16b", name, "no SPIFFE ID in sub to choose the bundle by")
		return
	}
	td := id.TrustDomain().Name()
	jws, err := jose.ParseSigned(svid.Token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		r.add("WIT rule 16b", name, false, "does not parse as a JWS: %v", err)
		return
	}
	tried := 0
	for _, k := range svid.Keys[td] {
		if k.KeyID != kid {
			continue
		}
		tried++
		if _, err := jws.Verify(k.Key); err == nil {
			r.add("WIT rule 16b", name, true, "%s signature verified with key %q of %q's WIT bundle", alg, kid, td)
			return
		}
	}
	if tried == 0 {
		r.add("WIT rule 16b", name, false, "no key %q among the %d WIT-SVID keys of %q", kid, len(svid.Keys[td]), td)
		return
	}
	r.add("WIT rule 16b", name, false, "the %s signature verifies with none of the %d keys %q of %q", alg, tried, kid, td)
}

// checkWITKey checks WIT rule 17c: the private key served with the token
// is a private JWK of the key cnf.jwk binds.
func (r *Report) checkWITKey(name, key string, cnf crypto.PublicKey) {
	if key == "" {
		r.na("WIT rule 17c", name, "no private key given")
		return
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(key)); err != nil || !jwk.Valid() {
		r.add("WIT rule 17c", name, false, "wit_svid_key is not a JWK: %v", err)
		return
	}
	if jwk.IsPublic() {
		r.add("WIT rule 17c", name, false, "wit_svid_key is a public key, not the private key")
		return
	}
	if cnf == nil {
		r.na("WIT rule 17c", name, "cnf.jwk names no usable key (WIT rule 6) to compare with")
		return
	}
	eq, ok := jwk.Public().Key.(interface{ Equal(crypto.PublicKey) bool })
	match := ok && eq.Equal(cnf)
	r.add("WIT rule 17c", name, match, "wit_svid_key is a private %s key; its public key is cnf.jwk's: %v", keyType(jwk.Key), match)
}

// keyType names a key's type for evidence.
func keyType(k any) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return "EC " + k.Curve.Params().Name
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "RSA"
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// CheckWITKeySet checks a JWK Set served as a Workload API WIT bundle:
// every key is a public key (Bundle rule 12) with a kid unique in the set
// (WIT rule 16a), and a WIT-SVID key (WIT rule 17b). It returns the keys
// that parsed.
func (r *Report) CheckWITKeySet(name string, doc []byte) []jose.JSONWebKey {
	return r.checkKeySet(keySetRules{use: "wit-svid", useRule: "WIT rule 17b", kidRule: "WIT rule 16a"}, name, doc)
}
