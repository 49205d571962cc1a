package gcpiit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/spiffekit/spiffekit/attest"
)

// ComputeAPIURL is the Compute Engine API's v1 root.
const ComputeAPIURL = "https://compute.googleapis.com/compute/v1/"

// DefaultMaxMetadataValueSize bounds a metadata value that becomes a
// selector when [InstanceMetadataConfig].MaxMetadataValueSize is zero
// (SPIRE's default).
const DefaultMaxMetadataValueSize = 128

// computeScope is the OAuth scope of a read of an instance.
const computeScope = "https://www.googleapis.com/auth/compute.readonly"

// maxInstanceSize bounds the Compute API's description of an instance.
const maxInstanceSize = 1 << 20

// InstanceMetadataConfig turns on the lookup of each instance through the
// Compute API (SPIRE's use_instance_metadata), for selectors of its tags,
// service accounts, labels and metadata.
type InstanceMetadataConfig struct {
	// ServiceAccountFile is a service account's JSON key file whose
	// account may read the instances (compute.instances.get; SPIRE's
	// service_account_file). Empty means Application Default Credentials
	// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, or the server's own
	// instance's account), found at the first lookup.
	ServiceAccountFile string

	// AllowedLabelKeys are the label keys whose labels become selectors
	// (SPIRE's allowed_label_keys); others are left out.
	AllowedLabelKeys []string

	// AllowedMetadataKeys are the metadata keys whose values become
	// selectors (SPIRE's allowed_metadata_keys); others are left out.
	AllowedMetadataKeys []string

	// MaxMetadataValueSize bounds an allowed metadata value (SPIRE's
	// max_metadata_value_size); an instance with a longer one is not
	// admitted. Zero means [DefaultMaxMetadataValueSize].
	MaxMetadataValueSize int

	// Endpoint is the Compute API's root. Empty means [ComputeAPIURL].
	Endpoint string

	// HTTPClient carries the API's requests and the credentials' token
	// requests. Nil means a client with timeouts that uses the proxy of
	// the environment.
	HTTPClient *http.Client
}

// computeClient reads instances through the Compute API.
type computeClient struct {
	endpoint string
	base     *http.Client
	labels   map[string]bool
	metadata map[string]bool
	maxValue int

	mu     sync.Mutex
	creds  *google.Credentials // nil until found (default credentials)
	client *http.Client
}

func newComputeClient(c InstanceMetadataConfig) (*computeClient, error) {
	if c.MaxMetadataValueSize < 0 {
		return nil, errors.New("gcpiit: the largest metadata value size must not be negative")
	}
	if len(c.AllowedLabelKeys) > maxListItems || len(c.AllowedMetadataKeys) > maxListItems {
		return nil, fmt.Errorf("gcpiit: a key allow-list has more than %d items", maxListItems)
	}
	cc := &computeClient{endpoint: c.Endpoint, base: c.HTTPClient, labels: map[string]bool{}, metadata: map[string]bool{}, maxValue: c.MaxMetadataValueSize}
	if cc.endpoint == "" {
		cc.endpoint = ComputeAPIURL
	}
	if u, err := url.Parse(cc.endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("gcpiit: Compute API URL %q: want an https:// (or http://) URL", cc.endpoint)
	}
	if cc.endpoint[len(cc.endpoint)-1] != '/' {
		cc.endpoint += "/"
	}
	if cc.maxValue == 0 {
		cc.maxValue = DefaultMaxMetadataValueSize
	}
	for _, k := range c.AllowedLabelKeys {
		cc.labels[k] = true
	}
	for _, k := range c.AllowedMetadataKeys {
		cc.metadata[k] = true
	}
	if cc.base == nil {
		cc.base = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: 10 * time.Second,
				MaxIdleConns:          4,
				IdleConnTimeout:       time.Minute,
			},
		}
	}
	if c.ServiceAccountFile != "" {
		data, err := os.ReadFile(c.ServiceAccountFile)
		if err != nil {
			return nil, fmt.Errorf("gcpiit: service account file: %w", err)
		}
		creds, err := google.CredentialsFromJSONWithType(cc.tokenContext(), data, google.ServiceAccount, computeScope)
		if err != nil {
			return nil, fmt.Errorf("gcpiit: service account file %s: %w", c.ServiceAccountFile, err)
		}
		cc.creds = creds
	}
	return cc, nil
}

// tokenContext is the context the credentials fetch their tokens with:
// through the base client, for the life of the server.
func (c *computeClient) tokenContext() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, c.base)
}

// httpClient returns the authorized client, finding the default
// credentials at the first call.
func (c *computeClient) httpClient(ctx context.Context) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	if c.creds == nil {
		creds, err := google.FindDefaultCredentials(c.tokenContext(), computeScope)
		if err != nil {
			return nil, fmt.Errorf("gcpiit: credentials of the Compute API: %w", err)
		}
		c.creds = creds
	}
	c.client = &http.Client{
		Timeout:   c.base.Timeout,
		Transport: &oauth2.Transport{Source: c.creds.TokenSource, Base: c.base.Transport},
	}
	return c.client, nil
}

// instance is the part of the Compute API's Instance this package reads.
type instance struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Tags   struct {
		Items []string `json:"items"`
	} `json:"tags"`
	Labels   map[string]string `json:"labels"`
	Metadata struct {
		Items []struct {
			Key   string  `json:"key"`
			Value *string `json:"value"`
		} `json:"items"`
	} `json:"metadata"`
	ServiceAccounts []struct {
		Email string `json:"email"`
	} `json:"serviceAccounts"`
}

// errNoInstance is wrapped when the Compute API has no such instance.
var errNoInstance = errors.New("no such instance")

// get reads the instance of ce.
func (c *computeClient) get(ctx context.Context, ce ComputeEngine) (*instance, error) {
	client, err := c.httpClient(ctx)
	if err != nil {
		return nil, err
	}
	u := c.endpoint + "projects/" + url.PathEscape(ce.ProjectID) + "/zones/" + url.PathEscape(ce.Zone) + "/instances/" + url.PathEscape(ce.InstanceName)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gcpiit: Compute API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInstanceSize+1))
	if err != nil {
		return nil, fmt.Errorf("gcpiit: Compute API: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w %s in %s of project %s", errNoInstance, ce.InstanceName, ce.Zone, ce.ProjectID)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("gcpiit: Compute API: GET instance %s: %s", ce.InstanceName, resp.Status)
	case len(body) > maxInstanceSize:
		return nil, fmt.Errorf("gcpiit: Compute API: instance %s is described in more than %d bytes", ce.InstanceName, maxInstanceSize)
	}
	inst, err := parseInstance(body)
	if err != nil {
		return nil, fmt.Errorf("gcpiit: Compute API: instance %s: %w", ce.InstanceName, err)
	}
	return inst, nil
}

// parseInstance decodes the Compute API's description of an instance.
func parseInstance(body []byte) (*instance, error) {
	var inst instance
	if err := json.Unmarshal(body, &inst); err != nil {
		return nil, err
	}
	return &inst, nil
}

// selectors looks the instance of ce up and returns the selectors of its
// tags, service accounts and allowed labels and metadata. The instance
// must be the token's: an instance of the same name made since has
// another ID, and is refused. An error wrapping attest.ErrNodeRejected
// means the instance is not there, or not the token's.
func (c *computeClient) selectors(ctx context.Context, ce ComputeEngine) ([]attest.Selector, error) {
	inst, err := c.get(ctx, ce)
	if errors.Is(err, errNoInstance) {
		return nil, reject(err, "the Compute API has %v", err)
	}
	if err != nil {
		return nil, err
	}
	return c.instanceSelectors(ce, inst)
}

// instanceSelectors returns the selectors of inst, which the Compute API
// gave for the instance of ce.
func (c *computeClient) instanceSelectors(ce ComputeEngine, inst *instance) ([]attest.Selector, error) {
	if inst.ID != ce.InstanceID {
		return nil, reject(nil, "instance %s in %s is %q in the Compute API, not the token's %s: the token's instance is gone", ce.InstanceName, ce.Zone, truncate(inst.ID), ce.InstanceID)
	}
	var sels []attest.Selector
	add := func(value string) {
		sel := attest.Selector{Type: Type, Value: value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	for _, tag := range inst.Tags.Items {
		add("tag:" + tag)
	}
	for _, sa := range inst.ServiceAccounts {
		add("sa:" + sa.Email)
	}
	keys := make([]string, 0, len(inst.Labels))
	for k := range inst.Labels {
		if c.labels[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("label:" + k + ":" + inst.Labels[k])
	}
	for _, item := range inst.Metadata.Items {
		if !c.metadata[item.Key] {
			continue
		}
		var v string
		if item.Value != nil {
			v = *item.Value
		}
		if len(v) > c.maxValue {
			return nil, reject(nil, "instance %s: metadata %q is %d bytes, more than the %d allowed", ce.InstanceName, truncate(item.Key), len(v), c.maxValue)
		}
		add("metadata:" + item.Key + ":" + v)
	}
	return sels, nil
}
