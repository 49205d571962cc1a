package azureimds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
)

// MaxSignatureSize bounds the attested document's signature, in base64
// (Azure's is about 4 KB: the message, its content and the leaf
// certificate).
const MaxSignatureSize = 16 << 10

// Response is the agent's answer to the server's nonce, SPIRE's
// azure_imds payload, so that agents and servers of either project
// interoperate.
type Response struct {
	// Document is the metadata service's attested document.
	Document Document `json:"document"`
	// Metadata is what the agent says of itself. Nothing in it is trusted:
	// the tenant only picks the allow-list the document is held to.
	Metadata Metadata `json:"metadata"`
}

// Document is the attested document as the metadata service returns it.
type Document struct {
	// Encoding is "pkcs7".
	Encoding string `json:"encoding"`
	// Signature is the base64 DER PKCS #7 signed-data message that holds
	// the document's content.
	Signature string `json:"signature"`
}

// Metadata is the agent's untrusted account of itself.
type Metadata struct {
	// AgentDomain names the agent's tenant, as the server's allow-list
	// names it (SPIRE's tenant_domain).
	AgentDomain string `json:"agentDomain"`
	// VMSSName is the VM's scale set, if any. It is not used.
	VMSSName *string `json:"vmssName,omitempty"`
}

// Content is what the signed content of an attested document says, the
// fields this package reads.
type Content struct {
	Nonce          string    `json:"nonce"`
	VMID           string    `json:"vmId"`
	SubscriptionID string    `json:"subscriptionId"`
	SKU            string    `json:"sku"`
	TimeStamp      timeStamp `json:"timeStamp"`
}

type timeStamp struct {
	CreatedOn string `json:"createdOn"`
	ExpiresOn string `json:"expiresOn"`
}

// timeFormat is the layout of the document's timestamps,
// "11/28/18 06:16:17 -0000".
const timeFormat = "01/02/06 15:04:05 -0700"

var (
	guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// tenantRE: a tenant ID, or a domain name such as
	// contoso.onmicrosoft.com, in lower case.
	tenantRE = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+)$`)
	// nonceRE: the server's nonces, and what the agent passes on.
	nonceRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

// parseResponse decodes and bounds an agent's answer. It checks shapes
// only; nothing in it is trusted before the signature verifies.
func parseResponse(b []byte) (Response, error) {
	var r Response
	switch {
	case len(b) == 0:
		return r, errors.New("response is empty")
	case len(b) > attest.MaxNodePayload:
		return r, fmt.Errorf("response is larger than %d bytes", attest.MaxNodePayload)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return Response{}, fmt.Errorf("response is not a JSON object of document and metadata: %w", err)
	}
	if d.More() {
		return Response{}, errors.New("response has data after its JSON object")
	}
	switch {
	case r.Document.Encoding != "pkcs7":
		return Response{}, fmt.Errorf("document's encoding is %q, want pkcs7", azuremeta.Truncate(r.Document.Encoding))
	case r.Document.Signature == "":
		return Response{}, errors.New("document has no signature")
	case len(r.Document.Signature) > MaxSignatureSize:
		return Response{}, fmt.Errorf("document's signature is larger than %d bytes", MaxSignatureSize)
	}
	return r, nil
}

// parseContent decodes the signed content of a document and checks the
// fields the agent ID is made of and its times at now, give or take
// leeway.
func parseContent(b []byte, now time.Time, leeway time.Duration) (Content, error) {
	var c Content
	if !utf8.Valid(b) {
		return c, errors.New("document is not UTF-8")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Content{}, fmt.Errorf("document is not a JSON object: %w", err)
	}
	switch {
	case !guidRE.MatchString(c.VMID):
		return Content{}, fmt.Errorf("document's VM ID %s is not a GUID", azuremeta.Truncate(c.VMID))
	case !guidRE.MatchString(c.SubscriptionID):
		return Content{}, fmt.Errorf("document's subscription ID %s is not a GUID", azuremeta.Truncate(c.SubscriptionID))
	}
	created, err := time.Parse(timeFormat, c.TimeStamp.CreatedOn)
	if err != nil {
		return Content{}, fmt.Errorf("document's createdOn %s is not a time", azuremeta.Truncate(c.TimeStamp.CreatedOn))
	}
	expires, err := time.Parse(timeFormat, c.TimeStamp.ExpiresOn)
	if err != nil {
		return Content{}, fmt.Errorf("document's expiresOn %s is not a time", azuremeta.Truncate(c.TimeStamp.ExpiresOn))
	}
	switch {
	case now.Add(leeway).Before(created):
		return Content{}, fmt.Errorf("document was created in the future (%s)", c.TimeStamp.CreatedOn)
	case now.Add(-leeway).After(expires):
		return Content{}, fmt.Errorf("document expired at %s", c.TimeStamp.ExpiresOn)
	}
	return c, nil
}
