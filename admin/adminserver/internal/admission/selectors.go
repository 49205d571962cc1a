package admission

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
)

// knownSelectors is, for each selector type of the attestors built into
// spiffekit, the selectors that attestor can produce: each key (the value up
// to and including its last fixed ':'-separated part) with a check of what
// follows it. It is the one place that knows them; keep it in step with
// attest/unix, attest/docker, attest/k8s, attest/jointoken and
// attest/x509pop. A selector of such a
// type whose value matches no key, or whose rest fails the check, can
// never match a workload or node, and an entry holding it is refused.
// Other types belong to custom attestors and are left alone.
var knownSelectors = map[string]map[string]func(string) error{
	"unix": { // attest/unix
		"uid":                 decimalID,
		"gid":                 decimalID,
		"supplementary_gid":   decimalID,
		"user":                nonEmpty,
		"group":               nonEmpty,
		"supplementary_group": nonEmpty,
		"path":                absolutePath,
		"sha256":              sha256Hex,
	},
	"join_token": { // attest/jointoken
		"id": tokenID,
	},
	"docker": { // attest/docker
		"label":    keyValue,
		"image_id": nonEmpty,
		"env":      envVar,
	},
	"k8s": { // attest/k8s
		"ns":                   nonEmpty,
		"sa":                   nonEmpty,
		"pod-name":             nonEmpty,
		"pod-uid":              nonEmpty,
		"node-name":            nonEmpty,
		"pod-label":            keyValue,
		"pod-owner":            keyValue,
		"pod-owner-uid":        keyValue,
		"container-name":       nonEmpty,
		"container-image":      nonEmpty,
		"pod-image":            nonEmpty,
		"pod-init-image":       nonEmpty,
		"pod-image-count":      count,
		"pod-init-image-count": count,
	},
	"x509pop": { // attest/x509pop
		"subject:cn":     nonEmpty,
		"serialnumber":   serialHex,
		"ca:fingerprint": sha256Hex,
		"san:dns":        nonEmpty,
		"san:uri":        nonEmpty,
	},
}

// attestorOf names, in errors, the attestor of a known selector type.
var attestorOf = map[string]string{"unix": "unix", "docker": "docker", "k8s": "k8s", "join_token": "join token", "x509pop": "x509pop"}

// CheckSelector reports why sel can never match, if its type is one of
// [knownSelectors] (or differs from one only in case) and its value is not
// of a shape that attestor produces; nil otherwise.
func CheckSelector(sel attest.Selector) error {
	if strings.EqualFold(sel.Type, oidcType) {
		return checkOIDC(sel)
	}
	kinds, ok := knownSelectors[sel.Type]
	if !ok {
		for typ := range knownSelectors {
			if strings.EqualFold(typ, sel.Type) {
				return fmt.Errorf("selector types are case-sensitive; the %s attestor's type is %q", attestorOf[typ], typ)
			}
		}
		return nil
	}
	// No key followed by ':' begins another, so at most one matches.
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		if rest, ok := strings.CutPrefix(sel.Value, kind+":"); ok {
			if err := kinds[kind](rest); err != nil {
				return fmt.Errorf("%s %w", kind, err)
			}
			return nil
		}
	}
	kind, _, _ := strings.Cut(sel.Value, ":")
	return fmt.Errorf("the %s attestor makes no %q selector (it makes %s)",
		attestorOf[sel.Type], kind, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
}

// oidcType is the type of the selectors the token exchange endpoint
// (package exchange) makes of a verified token's claims:
// oidc:<issuer>:sub:<subject> and oidc:<issuer>:claim:<name>:<value>,
// where the issuer is an https URL holding neither ":sub:" nor ":claim:"
// and the name holds no ':'.
const oidcType = "oidc"

// checkOIDC reports why an oidc selector can never match.
func checkOIDC(sel attest.Selector) error {
	if sel.Type != oidcType {
		return fmt.Errorf("selector types are case-sensitive; the token exchange's type is %q", oidcType)
	}
	const shape = "must be <https issuer>:sub:<subject> or <https issuer>:claim:<name>:<value>"
	v, ok := strings.CutPrefix(sel.Value, "https://")
	if !ok {
		return errors.New("the token exchange's selectors " + shape)
	}
	sub, claim := strings.Index(v, ":sub:"), strings.Index(v, ":claim:")
	switch {
	case sub > 0 && (claim < 0 || sub < claim):
		if v[sub+len(":sub:"):] == "" {
			return errors.New("the token exchange's subject must not be empty")
		}
		return nil
	case claim > 0:
		if err := keyValue(v[claim+len(":claim:"):]); err != nil {
			return fmt.Errorf("the token exchange's claim %w", err)
		}
		return nil
	}
	return errors.New("the token exchange's selectors " + shape)
}

// decimalID accepts a uid or gid as the unix attestor writes it: a
// 32-bit unsigned decimal number without sign or leading zeros.
func decimalID(v string) error {
	if _, err := strconv.ParseUint(v, 10, 32); err != nil || v != "0" && v[0] == '0' {
		return errors.New("must be a decimal number without leading zeros")
	}
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// keyValue accepts "<key>:<value>" with a key that is not empty: a label
// (its value may be empty), an owner's kind and name.
func keyValue(v string) error {
	if k, _, ok := strings.Cut(v, ":"); !ok || k == "" {
		return errors.New("must be <key>:<value>")
	}
	return nil
}

// envVar accepts "<NAME>=<value>" with a name that is not empty.
func envVar(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return errors.New("must be <NAME>=<value>")
	}
	return nil
}

// count accepts a number of containers as the k8s attestor writes it.
func count(v string) error {
	if _, err := strconv.ParseUint(v, 10, 31); err != nil || v != "0" && v[0] == '0' {
		return errors.New("must be a decimal number without leading zeros")
	}
	return nil
}

func absolutePath(v string) error {
	if !strings.HasPrefix(v, "/") {
		return errors.New("must be an absolute path")
	}
	return nil
}

func sha256Hex(v string) error {
	if len(v) != 64 || !lowerHex(v) {
		return errors.New("must be 64 lower-case hexadecimal digits")
	}
	return nil
}

// serialHex accepts a certificate serial number as x509pop writes it:
// big.Int.Text(16), lower-case hexadecimal without leading zeros (and a
// '-' for the negative serials some old certificates have).
func serialHex(v string) error {
	v = strings.TrimPrefix(v, "-")
	if v == "" || !lowerHex(v) || len(v) > 1 && v[0] == '0' {
		return errors.New("must be lower-case hexadecimal digits without leading zeros")
	}
	return nil
}

func tokenID(v string) error {
	if !registry.ValidTokenID(v) {
		return fmt.Errorf("must be a token ID (1 to %d characters of A-Z, a-z, 0-9, _ and -)", registry.MaxTokenIDLen)
	}
	return nil
}

func lowerHex(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
