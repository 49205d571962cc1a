package exchange_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A registration entry that lets the main branch of one GitHub repository
// obtain spiffe://example.org/ci/app through token exchange.
func ExampleParentID() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	const github = "https://token.actions.githubusercontent.com"
	entry := registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/ci/app"),
		ParentID: exchange.ParentID(td),
		Selectors: []attest.Selector{
			{Type: exchange.SelectorType, Value: github + ":claim:repository:acme/app"},
			{Type: exchange.SelectorType, Value: github + ":claim:ref:refs/heads/main"},
		},
	}
	fmt.Println(entry.ParentID)
	for _, s := range entry.Selectors {
		fmt.Println(s)
	}
	// Output:
	// spiffe://example.org/spiffekit/exchange
	// oidc:https://token.actions.githubusercontent.com:claim:repository:acme/app
	// oidc:https://token.actions.githubusercontent.com:claim:ref:refs/heads/main
}

func ExampleSelectors() {
	sels, _ := exchange.Selectors("https://issuer.example", "alice", map[string]any{
		"email":  "alice@example.com",
		"groups": []any{"admins", "devs"},
		"exp":    1767225600,
	})
	for _, s := range sels {
		fmt.Println(s)
	}
	// Output:
	// oidc:https://issuer.example:claim:email:alice@example.com
	// oidc:https://issuer.example:claim:groups:admins
	// oidc:https://issuer.example:claim:groups:devs
	// oidc:https://issuer.example:sub:alice
}

// noMinter stands for the CA in this example, which refuses every token
// before anything is minted.
type noMinter struct{}

func (noMinter) MintX509SVID(context.Context, spiffeid.ID, crypto.PublicKey, []string, time.Duration) ([]*x509.Certificate, error) {
	return nil, fmt.Errorf("not in this example")
}

func (noMinter) MintJWTSVID(context.Context, spiffeid.ID, []string, time.Duration) (string, error) {
	return "", fmt.Errorf("not in this example")
}

func ExampleNew() {
	h, err := exchange.New(exchange.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		Issuers:     []exchange.Issuer{{URL: "https://token.actions.githubusercontent.com", Audience: "spiffe://example.org"}},
		Entries:     fixedEntries{}, // in a server: its *registry/index.Index
		Minter:      noMinter{},     // in a server: its CA
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	form := url.Values{
		"grant_type":         {exchange.GrantType},
		"subject_token":      {"eyJhbGciOiJub25lIn0.e30."},
		"subject_token_type": {exchange.TokenTypeJWT},
		"audience":           {"https://api.example.com"},
	}
	req := httptest.NewRequest("POST", "/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	rec.Body.WriteTo(os.Stdout)
	// Output:
	// 400
	// {"error":"invalid_request","error_description":"the subject token is not acceptable"}
}
