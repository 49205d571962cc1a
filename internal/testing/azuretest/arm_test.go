package azuretest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// armToken has the stand-in's token endpoint grant a token for form.
func armToken(t *testing.T, a *ARM, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(a.URL+"/tenant-1/oauth2/v2.0/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Entra ID grants a token only for the application's own credentials and
// the resource's scope; Resource Manager answers a GET only with such a
// token and an api-version, gives the resources it was given (matched
// without regard to case), and 404 for others.
func TestARM(t *testing.T) {
	a := StartARM(t)
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.AppID}, "client_secret": {a.AppSecret}, "scope": {a.URL + "/.default"}}
	for _, bad := range []struct {
		key, value string
		status     int
		code       string
	}{
		{"grant_type", "password", http.StatusBadRequest, "invalid_request"},
		{"scope", "https://management.azure.com/.default", http.StatusBadRequest, "invalid_request"},
		{"client_secret", "wrong", http.StatusUnauthorized, "invalid_client"},
		{"client_id", "someone-else", http.StatusUnauthorized, "invalid_client"},
	} {
		form := url.Values{}
		for k, v := range good {
			form[k] = v
		}
		form.Set(bad.key, bad.value)
		status, body := armToken(t, a, form)
		assert.Equal(t, bad.status, status, bad.key)
		assert.Contains(t, body, bad.code, bad.key)
	}
	status, body := armToken(t, a, good)
	require.Equal(t, http.StatusOK, status, body)
	var tok struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	assert.Equal(t, "Bearer", tok.TokenType)
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken}

	vm := "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/vm-1"
	nic := NICResourceID("sub-1", "rg-1", "nic-1")
	nsg := NSGResourceID("sub-1", "rg-1", "nsg-1")
	subnet := SubnetResourceID("sub-1", "rg-1", "vnet-1", "default")
	a.AddVM(t, vm, "tenant-1", "principal-1", nic)
	a.AddNIC(t, nic, nsg, subnet)
	a.AddNIC(t, NICResourceID("sub-1", "rg-1", "nic-2"), "", subnet)

	code, _ := get(t, a.URL+vm, bearer)
	assert.Equal(t, http.StatusBadRequest, code, "no api-version")
	code, body = get(t, a.URL+vm+"?api-version=2024-03-01", nil)
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Contains(t, body, "AuthenticationFailed")
	code, _ = get(t, a.URL+vm+"?api-version=2024-03-01", map[string]string{"Authorization": "Bearer forged"})
	assert.Equal(t, http.StatusUnauthorized, code)

	code, body = get(t, a.URL+strings.ToUpper(vm)+"?api-version=2024-03-01", bearer)
	require.Equal(t, http.StatusOK, code, "case-insensitive IDs")
	var gotVM struct {
		Name     string `json:"name"`
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
	require.NoError(t, json.Unmarshal([]byte(body), &gotVM))
	assert.Equal(t, "vm-1", gotVM.Name)
	assert.Equal(t, "principal-1", gotVM.Identity.PrincipalID)
	assert.Equal(t, "tenant-1", gotVM.Identity.TenantID)
	assert.Equal(t, nic, gotVM.Properties.NetworkProfile.NetworkInterfaces[0].ID)

	code, body = get(t, a.URL+nic+"?api-version=2024-03-01", bearer)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, nsg)
	assert.Contains(t, body, subnet)
	code, body = get(t, a.URL+NICResourceID("sub-1", "rg-1", "nic-2")+"?api-version=2024-03-01", bearer)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "networkSecurityGroup")

	code, body = get(t, a.URL+NICResourceID("sub-1", "rg-1", "gone")+"?api-version=2024-03-01", bearer)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, "ResourceNotFound")

	a.Set(nsg, http.StatusTooManyRequests, `{"error":{"code":"TooManyRequests"}}`)
	code, _ = get(t, a.URL+nsg+"?api-version=2024-03-01", bearer)
	assert.Equal(t, http.StatusTooManyRequests, code)

	assert.Contains(t, a.Gets(), strings.ToUpper(vm))
	assert.Len(t, a.Gets(), 5, "the authorized GETs only")

	// A resource that never answers holds the request until it ends.
	a.Set(vm, http.StatusOK, ARMHang)
	c := &http.Client{Timeout: 200 * time.Millisecond}
	req, err := http.NewRequest(http.MethodGet, a.URL+vm+"?api-version=2024-03-01", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", bearer["Authorization"])
	_, err = c.Do(req)
	assert.Error(t, err)
}
