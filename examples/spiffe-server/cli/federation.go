package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var federationCommands = []command{
	{name: "create", summary: "Creates a federation relationship in the datastore, or with -data several; every server polls it at once.", help: federationWriteHelp, setup: federationCreate},
	{name: "update", summary: "Replaces a federation relationship of the datastore, or with -data several.", help: federationWriteHelp, setup: federationUpdate},
	{name: "list", summary: "Lists the federation relationships: the configuration's and the datastore's.", setup: federationList},
	{name: "show", summary: "Prints the federation relationship with a trust domain.", setup: federationShow},
	{name: "delete", summary: "Deletes a federation relationship of the datastore; the bundle stays until bundle delete.", setup: federationDelete},
	{name: "refresh", summary: "Fetches the bundle of a federation relationship now, beside the regular polls.", help: federationRefreshHelp, setup: federationRefresh},
}

const federationRefreshHelp = `The server that answers fetches the bundle from the relationship's bundle
endpoint at once (a relationship of the configuration file or of the
datastore) and stores it if it changed, as SPIRE's federation refresh does;
the regular polls go on. It exits 1 when the fetch fails, saying why; the
stored bundle then stays.`

const federationWriteHelp = `A relationship is given by the flags, or several by -data: a JSON file (or
- for stdin) in SPIRE's format, {"federationRelationships": [{"trustDomain",
"bundleEndpointURL", "bundleEndpointProfile", "endpointSPIFFEID",
"trustDomainBundle", "trustDomainBundleFormat"}, ...]}, where
trustDomainBundle is a PEM string or a SPIFFE bundle document.
A relationship of the server's configuration file (federates_with) cannot be
created, changed or deleted here; change the file. update replaces every
field; without a bundle it keeps the stored one.
A self-serving https_spiffe endpoint (its SPIFFE ID in the trust domain it
serves) needs the trust domain's bundle to authenticate the first fetch:
-trustDomainBundlePath, or one set before with bundle set.`

// relationshipFlags are a relationship as flags, with SPIRE's names as
// aliases.
type relationshipFlags struct {
	trustDomain, url, profile, endpointID, bundlePath, bundleFormat, data string
}

func (f *relationshipFlags) declare(cmd *cmdline.Command) {
	cmd.String(&f.trustDomain, "trust-domain", "", "trust `domain` to federate with").Alias("trustDomain")
	cmd.String(&f.url, "bundle-endpoint-url", "", "https `URL` of its bundle endpoint").Alias("bundleEndpointURL")
	cmd.String(&f.profile, "bundle-endpoint-profile", "", "`profile` of the bundle endpoint: https_spiffe or https_web").Alias("bundleEndpointProfile")
	cmd.String(&f.endpointID, "endpoint-spiffe-id", "", "SPIFFE `ID` of an https_spiffe bundle endpoint").Alias("endpointSpiffeID", "endpointSPIFFEID")
	cmd.String(&f.bundlePath, "trust-domain-bundle-path", "", "`file` of the trust domain's bundle, for the first fetch of a self-serving https_spiffe endpoint").Alias("trustDomainBundlePath")
	cmd.String(&f.bundleFormat, "trust-domain-bundle-format", "pem", "`format` of that file: pem or spiffe").Alias("trustDomainBundleFormat")
	cmd.String(&f.data, "data", "", "JSON `file` of relationships in SPIRE's format, or - for stdin")
}

// relationshipFileJSON is SPIRE's -data file of federation relationships.
type relationshipFileJSON struct {
	Relationships []relationshipItemJSON `json:"federationRelationships"`
}

// relationshipItemJSON is one relationship of a -data file, with SPIRE's
// keys.
type relationshipItemJSON struct {
	TrustDomain             string          `json:"trustDomain"`
	BundleEndpointURL       string          `json:"bundleEndpointURL"`
	BundleEndpointProfile   string          `json:"bundleEndpointProfile"`
	EndpointSPIFFEID        string          `json:"endpointSPIFFEID"`
	TrustDomainBundle       json.RawMessage `json:"trustDomainBundle"`
	TrustDomainBundleFormat string          `json:"trustDomainBundleFormat"`
}

// maxRelationshipFile bounds a -data file: room for many relationships,
// each with a bundle.
const maxRelationshipFile = 16 << 20

// relationships returns the relationships the flags or the -data file
// give, each with its trust domain's name for messages, or the error of
// the item that cannot be read.
func (f *relationshipFlags) relationships(c *call) ([]relationshipItem, error) {
	if f.data == "" {
		if f.trustDomain == "" {
			return nil, usagef("-trustDomain is required (or -data)")
		}
		var bundle []byte
		if f.bundlePath != "" {
			data, _, err := readInput(nil, f.bundlePath, registry.MaxBundleDocument)
			if err != nil {
				return nil, err
			}
			bundle = data
		}
		r, err := toRelationship(f.trustDomain, f.url, f.profile, f.endpointID, bundle, f.bundleFormat)
		if err != nil {
			return nil, usagef("%s", err)
		}
		return []relationshipItem{{name: f.trustDomain, r: r}}, nil
	}
	for _, name := range []string{"trust-domain", "bundle-endpoint-url", "bundle-endpoint-profile", "endpoint-spiffe-id", "trust-domain-bundle-path", "trust-domain-bundle-format"} {
		if c.cmd.Set(name) {
			return nil, usagef("-%s cannot be used with -data, which gives every field", name)
		}
	}
	var in io.Reader = c.in
	path := f.data
	if path == "-" {
		path = ""
	} else {
		in = nil
	}
	data, name, err := readInput(in, path, maxRelationshipFile)
	if err != nil {
		return nil, err
	}
	return parseRelationshipFile(data, name)
}

// parseRelationshipFile parses a -data file, named name in messages: the
// relationships it holds, each with the error of an item that cannot be
// read, or the error of a file that cannot.
func parseRelationshipFile(data []byte, name string) ([]relationshipItem, error) {
	var file relationshipFileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %s", name, cmdline.OneLine(err))
	}
	if len(file.Relationships) == 0 {
		return nil, fmt.Errorf("%s: no federationRelationships", name)
	}
	items := make([]relationshipItem, len(file.Relationships))
	for i, j := range file.Relationships {
		items[i].name = j.TrustDomain
		bundle, format, err := rawBundle(j.TrustDomainBundle, j.TrustDomainBundleFormat)
		if err == nil {
			items[i].r, err = toRelationship(j.TrustDomain, j.BundleEndpointURL, j.BundleEndpointProfile, j.EndpointSPIFFEID, bundle, format)
		}
		items[i].err = err
	}
	return items, nil
}

// relationshipItem is one relationship to write, or why it cannot be.
type relationshipItem struct {
	name string
	r    registry.FederationRelationship
	err  error
}

// rawBundle returns the bundle of a -data item and its format: a JSON
// string is PEM, an object a SPIFFE bundle document, unless the format
// says otherwise.
func rawBundle(raw json.RawMessage, format string) ([]byte, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, format, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", fmt.Errorf("trustDomainBundle: %w", err)
		}
		if format == "" {
			format = "pem"
		}
		return []byte(s), format, nil
	}
	if format == "" {
		format = "spiffe"
	}
	return raw, format, nil
}

// toRelationship builds a relationship from its fields as given; the
// server checks the rest.
func toRelationship(tdName, url, profile, endpointID string, bundle []byte, format string) (registry.FederationRelationship, error) {
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("trust domain %q: %w", tdName, err)
	}
	r := registry.FederationRelationship{TrustDomain: td, BundleEndpointURL: url, BundleEndpointProfile: profile}
	switch profile {
	case registry.ProfileHTTPSSPIFFE, registry.ProfileHTTPSWeb:
	case "":
		return r, errors.New("the bundle endpoint profile is required: https_spiffe or https_web")
	default:
		return r, fmt.Errorf("unknown bundle endpoint profile %q: want https_spiffe or https_web", profile)
	}
	if url == "" {
		return r, errors.New("the bundle endpoint URL is required")
	}
	if endpointID != "" {
		if r.EndpointSPIFFEID, err = spiffeid.FromString(endpointID); err != nil {
			return r, fmt.Errorf("endpoint SPIFFE ID: %w", err)
		}
	} else if profile == registry.ProfileHTTPSSPIFFE {
		return r, errors.New("the https_spiffe profile needs the endpoint's SPIFFE ID (-endpointSpiffeID)")
	}
	if len(bundle) == 0 {
		return r, nil
	}
	// The bundle authenticates the endpoint: it is of the endpoint's trust
	// domain, as SPIRE reads it.
	bundleTD := td
	if !r.EndpointSPIFFEID.IsZero() {
		bundleTD = r.EndpointSPIFFEID.TrustDomain()
	}
	var b *spiffebundle.Bundle
	switch format {
	case "pem":
		xb, err := x509bundle.Parse(bundleTD, bundle)
		if err != nil {
			return r, fmt.Errorf("trust domain bundle (pem): %w", err)
		}
		b = spiffebundle.FromX509Bundle(xb)
	case "spiffe":
		if b, err = spiffebundle.Parse(bundleTD, bundle); err != nil {
			return r, fmt.Errorf("trust domain bundle (spiffe): %w", err)
		}
	default:
		return r, fmt.Errorf("trust domain bundle format %q: want pem or spiffe", format)
	}
	if r.TrustDomainBundle, err = b.Marshal(); err != nil {
		return r, fmt.Errorf("trust domain bundle: %w", err)
	}
	return r, nil
}

func federationCreate(cmd *cmdline.Command) action {
	var f relationshipFlags
	f.declare(cmd)
	return func(ctx context.Context, c *call) error {
		return writeRelationships(ctx, c, &f, "created", c.client.CreateFederationRelationship)
	}
}

func federationUpdate(cmd *cmdline.Command) action {
	var f relationshipFlags
	f.declare(cmd)
	return func(ctx context.Context, c *call) error {
		return writeRelationships(ctx, c, &f, "updated", c.client.UpdateFederationRelationship)
	}
}

// writeRelationships creates or updates each relationship given, prints
// the results, and fails when one failed.
func writeRelationships(ctx context.Context, c *call, f *relationshipFlags, done string,
	write func(context.Context, registry.FederationRelationship) (admin.Relationship, error)) error {
	items, err := f.relationships(c)
	if err != nil {
		return err
	}
	results := make([]relationshipResultJSON, 0, len(items))
	failed := 0
	for i, it := range items {
		res := relationshipResultJSON{Index: i + 1, TrustDomain: it.name}
		err := it.err
		if err == nil {
			var got admin.Relationship
			if got, err = write(ctx, it.r); err == nil {
				j := toRelationshipJSON(got)
				res.Relationship = &j
				results = append(results, res)
				continue
			}
			if f.data == "" {
				return err // one relationship: its error alone, as other commands give it
			}
			if !refused(err) {
				// The server is out of reach or failed: the rest would too.
				if i == 0 {
					return err
				}
				c.printResults(results)
				return fmt.Errorf("after %d of %d federation relationships: %w", i, len(items), err)
			}
		}
		failed++
		res.Error = cmdline.OneLine(err)
		results = append(results, res)
	}
	if err := c.printResults(results); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d federation relationships not %s", failed, len(items), done)
	}
	return nil
}

// refused reports whether err is the server's refusal of one relationship,
// after which the others may still succeed.
func refused(err error) bool {
	for _, kind := range []error{registry.ErrInvalid, registry.ErrNotFound, registry.ErrAlreadyExists, registry.ErrConflict, admin.ErrFailedPrecondition} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// printResults prints the results of federation create or update.
func (c *call) printResults(results []relationshipResultJSON) error {
	return c.print(relationshipResultsJSON{Results: results}, func(w io.Writer) {
		for _, r := range results {
			fmt.Fprintln(w)
			if r.Relationship != nil {
				printRelationship(w, *r.Relationship)
				continue
			}
			fmt.Fprintf(w, "Failed: %s\n", r.Error)
		}
	})
}

func federationList(cmd *cmdline.Command) action {
	return func(ctx context.Context, c *call) error {
		rels, err := c.client.FederationRelationships(ctx)
		if err != nil {
			return err
		}
		out := relationshipsJSON{Relationships: make([]relationshipJSON, len(rels))}
		for i, r := range rels {
			out.Relationships[i] = toRelationshipJSON(r)
		}
		return c.print(out, func(w io.Writer) {
			fmt.Fprintf(w, "Found %d federation %s\n", len(rels), plural(len(rels), "relationship", "relationships"))
			for _, r := range out.Relationships {
				fmt.Fprintln(w)
				printRelationship(w, r)
			}
		})
	}
}

func federationShow(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "trust-domain", "trust `domain` of the relationship (required)").
		Alias("trustDomain").Required()
	return func(ctx context.Context, c *call) error {
		r, err := c.client.FederationRelationship(ctx, td)
		if err != nil {
			return err
		}
		j := toRelationshipJSON(r)
		return c.print(j, func(w io.Writer) {
			fmt.Fprintf(w, "Found a federation relationship with trust domain %s:\n\n", td.Name())
			printRelationship(w, j)
		})
	}
}

func federationDelete(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "trust `domain` of the relationship (required)").
		Alias("trust-domain", "trustDomain").Required()
	return func(ctx context.Context, c *call) error {
		if err := c.client.DeleteFederationRelationship(ctx, td); err != nil {
			return err
		}
		return c.print(relationshipDeleteJSON{TrustDomain: td.Name()}, func(w io.Writer) {
			fmt.Fprintf(w, "Federation relationship with %s deleted; its bundle stays until bundle delete\n", td.Name())
		})
	}
}

func federationRefresh(cmd *cmdline.Command) action {
	var td spiffeid.TrustDomain
	cmd.Var(cmdline.NewValue(&td, spiffeid.TrustDomainFromString), "id", "trust `domain` of the relationship (required)").
		Alias("trust-domain", "trustDomain").Required()
	return func(ctx context.Context, c *call) error {
		got, err := c.client.RefreshFederationRelationship(ctx, td)
		if err != nil {
			return err
		}
		out := relationshipRefreshJSON{TrustDomain: td.Name(), Changed: got.Changed, SequenceNumber: got.SequenceNumber}
		return c.print(out, func(w io.Writer) {
			if got.Changed {
				fmt.Fprintf(w, "Bundle of %s refreshed: updated (sequence %d)\n", td.Name(), got.SequenceNumber)
				return
			}
			fmt.Fprintf(w, "Bundle of %s refreshed: unchanged (sequence %d)\n", td.Name(), got.SequenceNumber)
		})
	}
}

// printRelationship prints a relationship as SPIRE's federation commands
// do, with its source.
func printRelationship(w io.Writer, r relationshipJSON) {
	fmt.Fprintf(w, "Trust domain              : %s\n", r.TrustDomain)
	fmt.Fprintf(w, "Bundle endpoint URL       : %s\n", r.BundleEndpointURL)
	fmt.Fprintf(w, "Bundle endpoint profile   : %s\n", r.BundleEndpointProfile)
	if r.HTTPSSPIFFE != nil {
		fmt.Fprintf(w, "Endpoint SPIFFE ID        : %s\n", r.HTTPSSPIFFE.EndpointSPIFFEID)
	}
	fmt.Fprintf(w, "Source                    : %s\n", r.Source)
}

// relationshipJSON is a federation relationship, in the shape of SPIRE's
// (the profile as an https_web or https_spiffe object), with its profile's
// name, where it comes from, and, for a stored one, its bundle and times.
type relationshipJSON struct {
	TrustDomain           string           `json:"trust_domain"`
	BundleEndpointURL     string           `json:"bundle_endpoint_url"`
	BundleEndpointProfile string           `json:"bundle_endpoint_profile"`
	HTTPSWeb              *struct{}        `json:"https_web,omitempty"`
	HTTPSSPIFFE           *httpsSPIFFEJSON `json:"https_spiffe,omitempty"`
	// TrustDomainBundle is the SPIFFE bundle document that authenticates
	// the first fetch, if one was given.
	TrustDomainBundle json.RawMessage `json:"trust_domain_bundle,omitempty"`
	// Source is "config" (the configuration file's federates_with, read
	// only here) or "datastore".
	Source    string     `json:"source"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

type httpsSPIFFEJSON struct {
	EndpointSPIFFEID string `json:"endpoint_spiffe_id"`
}

func toRelationshipJSON(r admin.Relationship) relationshipJSON {
	j := relationshipJSON{
		TrustDomain:           r.TrustDomain.Name(),
		BundleEndpointURL:     r.BundleEndpointURL,
		BundleEndpointProfile: r.BundleEndpointProfile,
		Source:                "datastore",
	}
	if r.Configured {
		j.Source = "config"
	}
	switch r.BundleEndpointProfile {
	case registry.ProfileHTTPSWeb:
		j.HTTPSWeb = &struct{}{}
	case registry.ProfileHTTPSSPIFFE:
		j.HTTPSSPIFFE = &httpsSPIFFEJSON{EndpointSPIFFEID: r.EndpointSPIFFEID.String()}
	}
	if len(r.TrustDomainBundle) > 0 && json.Valid(r.TrustDomainBundle) {
		j.TrustDomainBundle = r.TrustDomainBundle
	}
	if !r.CreatedAt.IsZero() {
		c, u := r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		j.CreatedAt, j.UpdatedAt = &c, &u
	}
	return j
}

// relationshipsJSON is the output of federation list.
type relationshipsJSON struct {
	Relationships []relationshipJSON `json:"federation_relationships"`
}

// relationshipResultJSON is the outcome of one relationship of federation
// create or update.
type relationshipResultJSON struct {
	Index        int               `json:"index"` // 1-based: the flags' one, or the -data file's
	TrustDomain  string            `json:"trust_domain"`
	Relationship *relationshipJSON `json:"federation_relationship,omitempty"`
	Error        string            `json:"error,omitempty"`
}

// relationshipResultsJSON is the output of federation create and update.
type relationshipResultsJSON struct {
	Results []relationshipResultJSON `json:"results"`
}

// relationshipDeleteJSON is the output of federation delete.
type relationshipDeleteJSON struct {
	TrustDomain string `json:"trust_domain"`
}

// relationshipRefreshJSON is the output of federation refresh.
type relationshipRefreshJSON struct {
	TrustDomain    string `json:"trust_domain"`
	Changed        bool   `json:"changed"`
	SequenceNumber uint64 `json:"sequence_number"`
}
