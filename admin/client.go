package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/internal/apiclient"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// maxResponseBody bounds what the client reads of one response. An entry
// list is the largest answer; at this size it holds tens of thousands.
const maxResponseBody = 256 << 20

// Client speaks the administration API on a unix socket. It is safe for
// concurrent use.
//
// Errors answered by the server wrap [registry.ErrInvalid],
// [registry.ErrNotFound], [registry.ErrConflict],
// [registry.ErrAlreadyExists], [ErrFailedPrecondition] or
// [ErrPermissionDenied] as the case may be,
// for errors.Is. A socket the caller's uid may not connect to also gives
// [ErrPermissionDenied]. An answer not of the admin API's form (another
// server's socket, such as the launcher API's) says so, and wraps none.
type Client struct {
	path string
	hc   *http.Client
}

// Dial returns a client of the server listening on the unix socket at
// path. It connects lazily, on the first call; connections are reused.
// Close releases them.
func Dial(path string) *Client {
	return &Client{path: path, hc: apiclient.HTTPClient(path, 2)}
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// do sends one request and decodes a JSON answer into out (when not nil).
// On failure it returns the server's error, mapped to the sentinels.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("admin: malformed answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send returns a response with a 2xx status, whose body the caller closes.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "admin", Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, apiclient.DialError("admin", "the server", c.path, ErrPermissionDenied, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, responseError(c.path, resp)
}

// responseError returns the error of resp, a refusal of the server on the
// socket at path.
func responseError(path string, resp *http.Response) error {
	var e struct {
		wire.Error
		// Message is no field of the admin API's errors, but one of the
		// launcher API's ({"error": code, "message": text}).
		Message *string `json:"message"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &e) != nil || e.Error.Error == "" || e.Message != nil {
		// Not an error of the admin API, which always gives its message:
		// another server's socket (the launcher API's, say), whose 404 or
		// 403 must not read as the admin API's.
		return fmt.Errorf("admin: %s answered %s, not as the admin API does: is it the server's admin socket (-admin-socket)?",
			path, resp.Status)
	}
	kind := codeError(e.Code)
	if kind == nil && resp.StatusCode == http.StatusForbidden {
		kind = ErrPermissionDenied
	}
	return apiclient.Refused("admin", "", e.Error.Error, kind)
}

// doJSON is do with a request body encoded as JSON.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("admin: cannot encode request: %w", err)
	}
	return c.do(ctx, method, path, nil, bytes.NewReader(data), out)
}

// entryRequest is the wire form of an entry sent to be stored; the store
// sets the timestamps.
func entryRequest(e registry.Entry) wire.Entry {
	j := wire.EntryToJSON(e)
	j.CreatedAt, j.UpdatedAt = nil, nil
	return j
}

func decodeEntry(j wire.Entry) (registry.Entry, error) {
	e, err := wire.EntryFromJSON(j)
	if err != nil {
		return registry.Entry{}, fmt.Errorf("admin: malformed entry in answer: %w", err)
	}
	return e, nil
}

// CreateEntry creates an entry and returns it as stored. e.ID may be
// chosen (32 lowercase hexadecimal digits, see [registry.ValidEntryID]),
// else the server assigns one; an ID that is taken gives an error wrapping
// [registry.ErrAlreadyExists]. e.Revision must be zero; both SPIFFE IDs
// must be in the server's trust domain.
func (c *Client) CreateEntry(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	var out wire.Entry
	if err := c.doJSON(ctx, http.MethodPost, "/v1/entries", entryRequest(e), &out); err != nil {
		return registry.Entry{}, err
	}
	return decodeEntry(out)
}

// UpdateEntry replaces the entry with e.ID if its stored revision is still
// e.Revision (else the error wraps [registry.ErrConflict]) and returns it
// as stored.
func (c *Client) UpdateEntry(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if e.ID == "" {
		return registry.Entry{}, fmt.Errorf("admin: entry ID is required: %w", registry.ErrInvalid)
	}
	var out wire.Entry
	if err := c.doJSON(ctx, http.MethodPut, "/v1/entries/"+url.PathEscape(e.ID), entryRequest(e), &out); err != nil {
		return registry.Entry{}, err
	}
	return decodeEntry(out)
}

// Entry returns the entry with the given ID.
func (c *Client) Entry(ctx context.Context, id string) (registry.Entry, error) {
	if id == "" {
		return registry.Entry{}, fmt.Errorf("admin: entry ID is required: %w", registry.ErrInvalid)
	}
	var out wire.Entry
	if err := c.do(ctx, http.MethodGet, "/v1/entries/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return registry.Entry{}, err
	}
	return decodeEntry(out)
}

// ListEntries returns every entry that matches f, ordered by ID.
func (c *Client) ListEntries(ctx context.Context, f registry.Filter) ([]registry.Entry, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	var out struct {
		Entries []wire.Entry `json:"entries"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/entries", wire.EncodeFilter(f), nil, &out); err != nil {
		return nil, err
	}
	entries := make([]registry.Entry, 0, len(out.Entries))
	for _, j := range out.Entries {
		e, err := decodeEntry(j)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// CountEntries returns how many entries match f.
func (c *Client) CountEntries(ctx context.Context, f registry.Filter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("admin: %w", err)
	}
	var out wire.Count
	if err := c.do(ctx, http.MethodGet, "/v1/entries/count", wire.EncodeFilter(f), nil, &out); err != nil {
		return 0, err
	}
	return out.Count, nil
}

// DeleteEntry deletes the entry with the given ID and returns it as it was.
// A non-zero revision must equal the stored one, else the error wraps
// [registry.ErrConflict].
func (c *Client) DeleteEntry(ctx context.Context, id string, revision int64) (registry.Entry, error) {
	if id == "" {
		return registry.Entry{}, fmt.Errorf("admin: entry ID is required: %w", registry.ErrInvalid)
	}
	q := url.Values{}
	if revision != 0 {
		q.Set("revision", strconv.FormatInt(revision, 10))
	}
	var out wire.Entry
	if err := c.do(ctx, http.MethodDelete, "/v1/entries/"+url.PathEscape(id), q, nil, &out); err != nil {
		return registry.Entry{}, err
	}
	return decodeEntry(out)
}

// A Token is a join token as the server made it.
type Token struct {
	// Value is the secret token; whoever holds it can admit one node.
	Value string
	// ExpiresAt is when it stops admitting anyone.
	ExpiresAt time.Time
}

// GenerateToken asks for a join token valid for ttl (at least a second; the
// server may bound it further). A non-zero alias, in the server's trust
// domain and outside its reserved namespace ([registry.Reserved]), becomes
// a node alias of the agent the token admits: the server registers an
// entry for alias, parented by the server's own ID, whose selector is the
// token's (join_token:id:<token ID>), so that the entries parented by
// alias go to that agent. The agent's own ID stays
// spiffe://<td>/spiffekit/agent/join_token/<token ID>.
func (c *Client) GenerateToken(ctx context.Context, ttl time.Duration, alias spiffeid.ID) (Token, error) {
	req := wire.TokenRequest{TTL: ttl.String()}
	if !alias.IsZero() {
		req.SPIFFEID = alias.String()
	}
	var out wire.Token
	if err := c.doJSON(ctx, http.MethodPost, "/v1/tokens", req, &out); err != nil {
		return Token{}, err
	}
	return Token{Value: out.Token, ExpiresAt: out.ExpiresAt}, nil
}

// Status is what a server says of itself.
type Status struct {
	// TrustDomain is the server's trust domain.
	TrustDomain spiffeid.TrustDomain
	// Healthy is true when the server can do its work (see the Health
	// field of the server's configuration, adminserver.Config); Reason
	// says why not when it is false.
	Healthy bool
	Reason  string
}

// Status asks the server for its trust domain and health. It fails only
// when the server does not answer; an unhealthy server answers with
// Healthy false.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out wire.Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &out); err != nil {
		return Status{}, err
	}
	td, err := spiffeid.TrustDomainFromString(out.TrustDomain)
	if err != nil {
		return Status{}, fmt.Errorf("admin: malformed status in answer: %w", err)
	}
	return Status{TrustDomain: td, Healthy: out.Healthy, Reason: out.Reason}, nil
}

// Bundle returns the trust domain's own bundle in the given format: PEM
// certificates ([FormatPEM]) or a SPIFFE bundle document
// ([FormatSPIFFE]).
func (c *Client) Bundle(ctx context.Context, format BundleFormat) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/bundle", url.Values{"format": {string(format)}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("admin: reading the bundle: %w", err)
	}
	return data, nil
}

func bundlePath(td spiffeid.TrustDomain) string {
	return "/v1/federation/bundles/" + url.PathEscape(td.Name())
}

func decodeBundle(j wire.Bundle) (registry.FederatedBundle, error) {
	b, err := wire.BundleFromJSON(j)
	if err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("admin: malformed bundle in answer: %w", err)
	}
	return b, nil
}

// SetFederatedBundle stores doc, a SPIFFE bundle document, as the bundle
// of the foreign trust domain td and returns it as stored. The server's
// own trust domain is refused with an error wrapping [registry.ErrInvalid].
func (c *Client) SetFederatedBundle(ctx context.Context, td spiffeid.TrustDomain, doc []byte) (registry.FederatedBundle, error) {
	if td.IsZero() {
		return registry.FederatedBundle{}, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var out wire.Bundle
	if err := c.do(ctx, http.MethodPut, bundlePath(td), nil, bytes.NewReader(doc), &out); err != nil {
		return registry.FederatedBundle{}, err
	}
	return decodeBundle(out)
}

// FederatedBundle returns the bundle of the foreign trust domain td.
func (c *Client) FederatedBundle(ctx context.Context, td spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	if td.IsZero() {
		return registry.FederatedBundle{}, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var out wire.Bundle
	if err := c.do(ctx, http.MethodGet, bundlePath(td), nil, nil, &out); err != nil {
		return registry.FederatedBundle{}, err
	}
	return decodeBundle(out)
}

// ListFederatedBundles returns every federated bundle, ordered by trust
// domain name.
func (c *Client) ListFederatedBundles(ctx context.Context) ([]registry.FederatedBundle, error) {
	var out struct {
		Bundles []wire.Bundle `json:"bundles"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/federation/bundles", nil, nil, &out); err != nil {
		return nil, err
	}
	bundles := make([]registry.FederatedBundle, 0, len(out.Bundles))
	for _, j := range out.Bundles {
		b, err := decodeBundle(j)
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	return bundles, nil
}

// DeleteFederatedBundle deletes the bundle of the foreign trust domain td,
// doing to the entries that federate with td what mode says (the zero mode
// is [DeleteRestrict]: it fails, wrapping [ErrFailedPrecondition], while
// any entry federates with td). It returns how many entries it deleted or
// changed.
func (c *Client) DeleteFederatedBundle(ctx context.Context, td spiffeid.TrustDomain, mode BundleDeleteMode) (int, error) {
	if td.IsZero() {
		return 0, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var q url.Values
	if mode != "" {
		q = url.Values{"mode": {string(mode)}}
	}
	var out wire.BundleDeleted
	if err := c.do(ctx, http.MethodDelete, bundlePath(td), q, nil, &out); err != nil {
		return 0, err
	}
	return out.Entries, nil
}

func agentQuery(id spiffeid.ID) (url.Values, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("admin: agent ID is required: %w", registry.ErrInvalid)
	}
	return url.Values{"id": {id.String()}}, nil
}

func (c *Client) agents(ctx context.Context, q url.Values) ([]registry.Agent, error) {
	var out struct {
		Agents []wire.Agent `json:"agents"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/agents", q, nil, &out); err != nil {
		return nil, err
	}
	agents := make([]registry.Agent, 0, len(out.Agents))
	for _, j := range out.Agents {
		a, err := wire.AgentFromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("admin: malformed agent in answer: %w", err)
		}
		agents = append(agents, a)
	}
	return agents, nil
}

// CountAgents returns how many agents have a record.
func (c *Client) CountAgents(ctx context.Context) (int, error) {
	var out wire.Count
	if err := c.do(ctx, http.MethodGet, "/v1/agents/count", nil, nil, &out); err != nil {
		return 0, err
	}
	return out.Count, nil
}

// ListAgents returns the record of every attested agent, ordered by ID.
func (c *Client) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	return c.agents(ctx, nil)
}

// Agent returns the record of the agent with the given ID.
func (c *Client) Agent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	q, err := agentQuery(id)
	if err != nil {
		return registry.Agent{}, err
	}
	agents, err := c.agents(ctx, q)
	if err != nil {
		return registry.Agent{}, err
	}
	if len(agents) != 1 {
		return registry.Agent{}, fmt.Errorf("admin: server answered %d agents for one ID", len(agents))
	}
	return agents[0], nil
}

// EvictAgent deletes the record of the agent with the given ID: the agent
// must attest again, and may if its attestor allows it. It also frees the
// ID of an agent whose attestor does not allow attesting again (join_token)
// for a new attestation.
func (c *Client) EvictAgent(ctx context.Context, id spiffeid.ID) error {
	q, err := agentQuery(id)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, "/v1/agents", q, nil, nil)
}

// BanAgent marks the agent with the given ID as banned and returns its
// record: it is refused, and may not attest again, until evicted.
func (c *Client) BanAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	q, err := agentQuery(id)
	if err != nil {
		return registry.Agent{}, err
	}
	var out wire.Agent
	if err := c.do(ctx, http.MethodPost, "/v1/agents/ban", q, nil, &out); err != nil {
		return registry.Agent{}, err
	}
	a, err := wire.AgentFromJSON(out)
	if err != nil {
		return registry.Agent{}, fmt.Errorf("admin: malformed agent in answer: %w", err)
	}
	return a, nil
}
