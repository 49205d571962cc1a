package awstest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The server refuses what AWS refuses: requests that are not a signed
// form POST, and signatures by keys it did not issue.
func TestRefusesUnsignedRequests(t *testing.T) {
	s := Start(t)
	post := func(auth string, form url.Values) (int, string) {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Amz-Date", "20260102T030405Z")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	form := url.Values{"Action": {"DescribeInstances"}, "Version": {EC2Version}, "InstanceId.1": {"i-0123456789abcdef0"}}
	code, body := post("", form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>MissingAuthenticationToken</Code>")

	sig := "AWS4-HMAC-SHA256 Credential=%s/20260102/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + strings.Repeat("0", 64)
	code, body = post(strings.Replace(sig, "%s", "AKIDUNKNOWN", 1), form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>InvalidClientTokenId</Code>")

	code, body = post(strings.Replace(sig, "%s", s.Key().AccessKeyID, 1), form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>SignatureDoesNotMatch</Code>")
	require.Empty(t, s.Calls())

	resp, err := http.Get(s.URL + "/?Action=DescribeInstances")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
