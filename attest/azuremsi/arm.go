package azuremsi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
	"github.com/spiffekit/spiffekit/internal/bodylimit"
)

// Defaults of the Azure Resource Manager lookups.
const (
	// DefaultARMEndpoint is Azure Resource Manager's root (Azure's public
	// cloud).
	DefaultARMEndpoint = "https://management.azure.com"
	// DefaultLoginEndpoint is Microsoft Entra ID's root, where an
	// application's client credentials get a token.
	DefaultLoginEndpoint = "https://login.microsoftonline.com"
	// DefaultLookupTimeout bounds the calls of one attestation when
	// [ARMConfig].Timeout is zero.
	DefaultLookupTimeout = 10 * time.Second
	// MaxARMResponse bounds each response body of Resource Manager and
	// of the token endpoint.
	MaxARMResponse = 1 << 20
)

// API versions of the resources read.
const (
	vmAPIVersion  = "2024-07-01"
	nicAPIVersion = "2024-05-01"
)

// ARMConfig turns on the lookup of each attesting VM through Azure
// Resource Manager, for SPIRE's selectors of its network security groups,
// virtual networks and subnets, with the credentials of an application
// registered in the tenant (SPIRE's app_id and app_secret). The
// application needs read access to the VMs and their network interfaces
// (the Reader role on their resource groups, for example).
type ARMConfig struct {
	// AppID and AppSecret are the application's client ID and secret.
	// Both are required.
	AppID, AppSecret string

	// ARMEndpoint is Resource Manager's root. Empty means
	// [DefaultARMEndpoint] (national clouds have their own).
	ARMEndpoint string

	// LoginEndpoint is Entra ID's root; the token is asked of
	// <LoginEndpoint>/<tenant>/oauth2/v2.0/token. Empty means
	// [DefaultLoginEndpoint].
	LoginEndpoint string

	// Timeout bounds the calls of one attestation. Zero means
	// [DefaultLookupTimeout].
	Timeout time.Duration

	// HTTPClient carries the calls. Nil means a client that uses the
	// environment's proxy. Either way each response body is bounded by
	// [MaxARMResponse].
	HTTPClient *http.Client
}

// armClient reads one tenant's VMs through Resource Manager.
type armClient struct {
	tenant  string
	c       ARMConfig
	timeout time.Duration
	http    *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newARMClient(tenant string, c ARMConfig) (*armClient, error) {
	if c.AppID == "" || c.AppSecret == "" {
		return nil, fmt.Errorf("azuremsi: tenant %s: the Resource Manager lookup needs app_id and app_secret", tenant)
	}
	if c.Timeout < 0 {
		return nil, errors.New("azuremsi: the lookup timeout must not be negative")
	}
	if c.ARMEndpoint == "" {
		c.ARMEndpoint = DefaultARMEndpoint
	}
	if c.LoginEndpoint == "" {
		c.LoginEndpoint = DefaultLoginEndpoint
	}
	for _, e := range []struct{ name, url string }{{"Resource Manager", c.ARMEndpoint}, {"login", c.LoginEndpoint}} {
		if u, err := url.Parse(e.url); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("azuremsi: %s endpoint %q: want an https:// (or http://) URL", e.name, azuremeta.Truncate(e.url))
		}
	}
	c.ARMEndpoint = strings.TrimSuffix(c.ARMEndpoint, "/")
	c.LoginEndpoint = strings.TrimSuffix(c.LoginEndpoint, "/")
	a := &armClient{tenant: tenant, c: c, timeout: c.Timeout, http: c.HTTPClient}
	if a.timeout == 0 {
		a.timeout = DefaultLookupTimeout
	}
	if a.http == nil {
		a.http = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 4, IdleConnTimeout: time.Minute}}
	}
	return a, nil
}

// errARMTooLarge is the error of a response over MaxARMResponse.
var errARMTooLarge = fmt.Errorf("azuremsi: a Resource Manager or token response is larger than %d bytes", MaxARMResponse)

// do sends req and decodes its JSON answer into v; a status other than
// 200 is an error carrying Azure's error code and message.
func (a *armClient) do(req *http.Request, v any) error {
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := bodylimit.Limit(resp, MaxARMResponse, errARMTooLarge); err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		// Resource Manager's {"error": {"code", "message"}}, or the token
		// endpoint's OAuth {"error", "error_description"}.
		var armErr struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		var oauthErr struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		msg := "no error message"
		if json.Unmarshal(body, &armErr) == nil && armErr.Error.Code != "" {
			msg = armErr.Error.Code + ": " + armErr.Error.Message
		} else if json.Unmarshal(body, &oauthErr) == nil && oauthErr.Error != "" {
			msg = oauthErr.Error + ": " + oauthErr.Description
		}
		return fmt.Errorf("%s %s: %s (%s)", req.Method, req.URL.Path, resp.Status, azuremeta.Truncate(msg))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// bearer returns an access token for Resource Manager, asking Entra ID
// for one with the application's credentials when none is cached or it
// expires within five minutes.
func (a *armClient) bearer(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Until(a.expires) > 5*time.Minute {
		return a.token, nil
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {a.c.AppID},
		"client_secret": {a.c.AppSecret},
		"scope":         {a.c.ARMEndpoint + "/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.c.LoginEndpoint+"/"+url.PathEscape(a.tenant)+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := a.do(req, &tok); err != nil {
		return "", fmt.Errorf("azuremsi: token of application %s in tenant %s: %w", a.c.AppID, a.tenant, err)
	}
	if !strings.EqualFold(tok.TokenType, "Bearer") || tok.AccessToken == "" || tok.ExpiresIn <= 0 {
		return "", fmt.Errorf("azuremsi: token of application %s in tenant %s: not a bearer token with a lifetime", a.c.AppID, a.tenant)
	}
	a.token, a.expires = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	return a.token, nil
}

// get reads the resource at path (an ARM resource ID) with apiVersion.
func (a *armClient) get(ctx context.Context, path, apiVersion string, v any) error {
	token, err := a.bearer(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.c.ARMEndpoint+path+"?api-version="+apiVersion, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if err := a.do(req, v); err != nil {
		return fmt.Errorf("azuremsi: Resource Manager: %w", err)
	}
	return nil
}

// virtualMachine is the part of ARM's VM resource read here.
type virtualMachine struct {
	ID       string `json:"id"`
	Identity struct {
		PrincipalID string `json:"principalId"`
		TenantID    string `json:"tenantId"`
	} `json:"identity"`
	Properties struct {
		NetworkProfile struct {
			NetworkInterfaces []struct {
				ID string `json:"id"`
			} `json:"networkInterfaces"`
		} `json:"networkProfile"`
	} `json:"properties"`
}

// networkInterface is the part of ARM's network interface resource read
// here.
type networkInterface struct {
	ID         string `json:"id"`
	Properties struct {
		NetworkSecurityGroup *struct {
			ID string `json:"id"`
		} `json:"networkSecurityGroup"`
		IPConfigurations []struct {
			Properties struct {
				Subnet *struct {
					ID string `json:"id"`
				} `json:"subnet"`
			} `json:"properties"`
		} `json:"ipConfigurations"`
	} `json:"properties"`
}

// maxInterfaces bounds the network interfaces read for one VM (Azure
// allows 8 on the largest sizes).
const maxInterfaces = 16

// Resource IDs of the network resources, in any letter case (Azure's IDs
// are case-insensitive): the resource group and names become selectors.
var (
	nicIDRE    = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f-]{36})/resourceGroups/([\w.()-]{1,90})/providers/Microsoft\.Network/networkInterfaces/([\w.-]{1,80})$`)
	nsgIDRE    = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f-]{36})/resourceGroups/([\w.()-]{1,90})/providers/Microsoft\.Network/networkSecurityGroups/([\w.-]{1,80})$`)
	subnetIDRE = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f-]{36})/resourceGroups/([\w.()-]{1,90})/providers/Microsoft\.Network/virtualNetworks/([\w.-]{2,64})/subnets/([\w.-]{1,80})$`)
)

// selectors looks up the VM r names, whose system-assigned identity must
// be c's subject, and its network interfaces, and returns SPIRE's
// selectors of their security groups, virtual networks and subnets. Any
// failure is an error, never fewer selectors: an error wrapping
// attest.ErrNodeRejected when what Resource Manager says refuses the VM.
func (a *armClient) selectors(ctx context.Context, c *Claims, r Resource) ([]attest.Selector, error) {
	if r.VMName == "" {
		return nil, reject(nil, "identity %s: the Resource Manager lookup resolves the system-assigned identity of a VM, and the token's resource %s is not one", c.Subject, azuremeta.Truncate(c.ResourceID))
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	vmPath := "/subscriptions/" + r.Subscription + "/resourceGroups/" + r.ResourceGroup + "/providers/Microsoft.Compute/virtualMachines/" + r.VMName
	var vm virtualMachine
	if err := a.get(ctx, vmPath, vmAPIVersion, &vm); err != nil {
		return nil, err
	}
	return vmSelectors(c, vmPath, &vm, func(id string, nic *networkInterface) error {
		return a.get(ctx, id, nicAPIVersion, nic)
	})
}

// vmSelectors checks vm, which Resource Manager gave for vmPath, against
// c, reads its interfaces with getNIC, and returns their selectors.
func vmSelectors(c *Claims, vmPath string, vm *virtualMachine, getNIC func(string, *networkInterface) error) ([]attest.Selector, error) {
	switch {
	case !strings.EqualFold(vm.ID, vmPath):
		return nil, reject(nil, "Resource Manager describes VM %q, not the token's %s", azuremeta.Truncate(vm.ID), vmPath)
	case vm.Identity.PrincipalID != c.Subject || vm.Identity.TenantID != c.TenantID:
		return nil, reject(nil, "VM %s has the system-assigned identity %q of tenant %q, not the token's %s: the identity is gone from it", vmPath, azuremeta.Truncate(vm.Identity.PrincipalID), azuremeta.Truncate(vm.Identity.TenantID), c.Subject)
	case len(vm.Properties.NetworkProfile.NetworkInterfaces) > maxInterfaces:
		return nil, reject(nil, "VM %s has %d network interfaces, more than %d", vmPath, len(vm.Properties.NetworkProfile.NetworkInterfaces), maxInterfaces)
	}
	var sels []attest.Selector
	seen := map[string]bool{}
	add := func(value string) {
		sel := attest.Selector{Type: Type, Value: value}
		if !seen[value] && sel.Validate() == nil {
			seen[value] = true
			sels = append(sels, sel)
		}
	}
	for _, ref := range vm.Properties.NetworkProfile.NetworkInterfaces {
		if !nicIDRE.MatchString(ref.ID) {
			return nil, reject(nil, "VM %s: %q is not a network interface's resource ID", vmPath, azuremeta.Truncate(ref.ID))
		}
		var nic networkInterface
		if err := getNIC(ref.ID, &nic); err != nil {
			return nil, err
		}
		if !strings.EqualFold(nic.ID, ref.ID) {
			return nil, reject(nil, "Resource Manager describes network interface %q, not the VM's %s", azuremeta.Truncate(nic.ID), ref.ID)
		}
		if g := nic.Properties.NetworkSecurityGroup; g != nil {
			m := nsgIDRE.FindStringSubmatch(g.ID)
			if m == nil {
				return nil, reject(nil, "network interface %s: %q is not a network security group's resource ID", ref.ID, azuremeta.Truncate(g.ID))
			}
			add("network-security-group:" + m[2] + ":" + m[3])
		}
		for _, ipc := range nic.Properties.IPConfigurations {
			s := ipc.Properties.Subnet
			if s == nil {
				continue
			}
			m := subnetIDRE.FindStringSubmatch(s.ID)
			if m == nil {
				return nil, reject(nil, "network interface %s: %q is not a subnet's resource ID", ref.ID, azuremeta.Truncate(s.ID))
			}
			add("virtual-network:" + m[2] + ":" + m[3])
			add("virtual-network-subnet:" + m[2] + ":" + m[3] + ":" + m[4])
		}
	}
	return sels, nil
}
