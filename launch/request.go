package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxRequestSize bounds the body of a launch request, in bytes.
const MaxRequestSize = 8 << 10

// request is the JSON body of POST /v1/launches.
type request struct {
	SPIFFEID    string `json:"spiffe_id"`
	TTL         string `json:"ttl"`
	X509SVIDTTL string `json:"x509_svid_ttl"`
	JWTSVIDTTL  string `json:"jwt_svid_ttl"`
	Hint        string `json:"hint"`
}

// ParseRequest reads the JSON body of a launch request:
//
//	{"spiffe_id": "spiffe://example.org/sandbox/42", "ttl": "10m",
//	 "x509_svid_ttl": "5m", "jwt_svid_ttl": "1m", "hint": "job 42"}
//
// spiffe_id is required; the lifetimes are Go durations ("90s", "1h"),
// optional. Unknown members, a member given twice, trailing data and a
// body over MaxRequestSize are refused. It checks the form only; what may
// be launched is [Server.Launch]'s to decide. Errors wrap ErrInvalid.
func ParseRequest(body []byte) (Params, error) {
	if len(body) > MaxRequestSize {
		return Params{}, fmt.Errorf("%w: the body is larger than %d bytes", ErrInvalid, MaxRequestSize)
	}
	if err := noDuplicates(body); err != nil {
		return Params{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r request
	if err := dec.Decode(&r); err != nil {
		return Params{}, fmt.Errorf("%w: the body is not a launch request: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Params{}, fmt.Errorf("%w: data after the launch request", ErrInvalid)
	}
	if r.SPIFFEID == "" {
		return Params{}, fmt.Errorf("%w: spiffe_id is required", ErrInvalid)
	}
	var p Params
	var err error
	if p.SPIFFEID, err = spiffeid.FromString(r.SPIFFEID); err != nil {
		return Params{}, fmt.Errorf("%w: spiffe_id: %w", ErrInvalid, err)
	}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"ttl", r.TTL, &p.TTL}, {"x509_svid_ttl", r.X509SVIDTTL, &p.X509SVIDTTL}, {"jwt_svid_ttl", r.JWTSVIDTTL, &p.JWTSVIDTTL}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v <= 0 {
			return Params{}, fmt.Errorf("%w: %s %q is not a positive duration", ErrInvalid, d.name, truncate(d.s))
		}
		*d.dst = v
	}
	p.Hint = r.Hint
	return p, nil
}

// noDuplicates refuses a JSON object that names a member twice, which
// encoding/json would read as the last one: two parsers could then
// disagree on what was asked.
func noDuplicates(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errors.New("the body is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("the body is not a JSON object")
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("%q appears twice", truncate(name))
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("the body is not a JSON object")
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
