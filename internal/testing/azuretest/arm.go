package azuretest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ARM stands for Microsoft Entra ID's token endpoint and Azure Resource
// Manager's REST API, for the resources the node attestors read: POST
// /<tenant>/oauth2/v2.0/token takes the client credentials grant of the
// application it was given ([ARM.AppID], [ARM.AppSecret]) for the scope
// <its URL>/.default and returns a bearer token; GET of a resource ID
// with an api-version query and that token returns the resource's JSON,
// Resource Manager's {"error": {"code", "message"}} with 404 for one it
// does not have, 401 without a token it issued. Resource IDs are matched
// without regard to letter case, as Azure does.
type ARM struct {
	*httptest.Server

	// AppID and AppSecret are the application's credentials.
	AppID, AppSecret string

	mu        sync.Mutex
	resources map[string]rawResource // lower-case ID to body
	tokens    map[string]bool
	gets      []string
	hang      chan struct{}
}

type rawResource struct {
	status int
	body   string
}

// StartARM runs the stand-ins on a loopback port until the test ends,
// with no resource.
func StartARM(t testing.TB) *ARM {
	t.Helper()
	a := &ARM{AppID: "11111111-2222-3333-4444-555555555555", AppSecret: randomHex(t), resources: map[string]rawResource{}, tokens: map[string]bool{}, hang: make(chan struct{})}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(func() {
		close(a.hang)
		a.Close()
	})
	return a
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ARMHang, as a body, makes the server never answer for the resource.
const ARMHang = "<hang>"

// Set makes the API answer GET id with status and body.
func (a *ARM) Set(id string, status int, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resources[strings.ToLower(id)] = rawResource{status, body}
}

// AddVM makes the API describe the VM id whose system-assigned identity is
// principal of tenant, with the network interfaces nics.
func (a *ARM) AddVM(t testing.TB, id, tenant, principal string, nics ...string) {
	t.Helper()
	var refs []map[string]any
	for i, n := range nics {
		refs = append(refs, map[string]any{"id": n, "properties": map[string]any{"primary": i == 0}})
	}
	a.Set(id, http.StatusOK, mustJSON(t, map[string]any{
		"id": id, "name": id[strings.LastIndex(id, "/")+1:], "type": "Microsoft.Compute/virtualMachines", "location": "westeurope",
		"identity": map[string]any{"type": "SystemAssigned", "principalId": principal, "tenantId": tenant},
		"properties": map[string]any{
			"vmId":            "a1b2c3d4-0000-4000-8000-000000000001",
			"hardwareProfile": map[string]any{"vmSize": "Standard_D2s_v3"},
			"networkProfile":  map[string]any{"networkInterfaces": refs},
		},
	}))
}

// AddNIC makes the API describe the network interface id, with the
// network security group nsg (none if empty) and one IP configuration
// in each of subnets.
func (a *ARM) AddNIC(t testing.TB, id, nsg string, subnets ...string) {
	t.Helper()
	props := map[string]any{"provisioningState": "Succeeded"}
	if nsg != "" {
		props["networkSecurityGroup"] = map[string]any{"id": nsg}
	}
	var ipcs []map[string]any
	for i, s := range subnets {
		ipcs = append(ipcs, map[string]any{"name": "ipconfig" + strconv.Itoa(i+1), "properties": map[string]any{
			"privateIPAddress": "10.0.0." + strconv.Itoa(4+i), "subnet": map[string]any{"id": s}}})
	}
	props["ipConfigurations"] = ipcs
	a.Set(id, http.StatusOK, mustJSON(t, map[string]any{"id": id, "name": id[strings.LastIndex(id, "/")+1:], "type": "Microsoft.Network/networkInterfaces", "properties": props}))
}

// Gets returns the paths of the authorized GETs so far.
func (a *ARM) Gets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.gets...)
}

// NICResourceID, NSGResourceID and SubnetResourceID are the resource IDs
// of a network interface, a network security group and a subnet.
func NICResourceID(subscription, group, name string) string {
	return "/subscriptions/" + subscription + "/resourceGroups/" + group + "/providers/Microsoft.Network/networkInterfaces/" + name
}

// NSGResourceID is the resource ID of a network security group.
func NSGResourceID(subscription, group, name string) string {
	return "/subscriptions/" + subscription + "/resourceGroups/" + group + "/providers/Microsoft.Network/networkSecurityGroups/" + name
}

// SubnetResourceID is the resource ID of a subnet of a virtual network.
func SubnetResourceID(subscription, group, vnet, subnet string) string {
	return "/subscriptions/" + subscription + "/resourceGroups/" + group + "/providers/Microsoft.Network/virtualNetworks/" + vnet + "/subnets/" + subnet
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (a *ARM) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		a.token(w, r)
		return
	}
	if r.Method != http.MethodGet || r.URL.Query().Get("api-version") == "" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":"MissingApiVersionParameter","message":"The api-version query parameter (?api-version=) is required for all requests."}}`)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	valid := ok && a.tokens[tok]
	res, found := a.resources[strings.ToLower(r.URL.Path)]
	if valid {
		a.gets = append(a.gets, r.URL.Path)
	}
	a.mu.Unlock()
	switch {
	case !valid:
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"AuthenticationFailed","message":"Authentication failed. The 'Authorization' header is missing or invalid."}}`)
	case !found:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":"ResourceNotFound","message":"The Resource '%s' was not found."}}`, strings.ReplaceAll(r.URL.Path, `"`, ""))
	case res.body == ARMHang:
		select {
		case <-r.Context().Done():
		case <-a.hang:
		}
	default:
		w.WriteHeader(res.status)
		io.WriteString(w, res.body)
	}
}

// token answers the client credentials grant as Entra ID does.
func (a *ARM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != a.URL+"/.default" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_request","error_description":"AADSTS900144: The request body must contain client_credentials for the scope of this resource."}`)
		return
	}
	if r.PostForm.Get("client_id") != a.AppID || r.PostForm.Get("client_secret") != a.AppSecret {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
		return
	}
	a.mu.Lock()
	tok := "eyJ0eXAiOiJKV1QifQ." + hex.EncodeToString([]byte(r.PostForm.Get("client_id"))) + "." + strconv.Itoa(len(a.tokens))
	a.tokens[tok] = true
	a.mu.Unlock()
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, tok)
}
