package awsiid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/attest"
)

// Bounds of the parts of a payload, well above what AWS serves (a document
// of about 500 bytes, a 344-byte signature, a PKCS #7 message of about
// 1,500 bytes in base64).
const (
	// MaxDocumentSize bounds the instance identity document.
	MaxDocumentSize = 16 << 10
	// MaxSignatureSize bounds each signature, in base64.
	MaxSignatureSize = 16 << 10
)

// Payload is the agent's message: the instance identity document and its
// signatures as the instance metadata service serves them, under the names
// of SPIRE's aws_iid payload, so that agents and servers of either project
// interoperate.
type Payload struct {
	// Document is the JSON instance identity document
	// (/latest/dynamic/instance-identity/document).
	Document string `json:"document"`
	// Signature is the base64 RSA signature of Document with SHA-256
	// (/latest/dynamic/instance-identity/signature).
	Signature string `json:"signature"`
	// RSA2048 is the base64 DER PKCS #7 signed-data message that holds the
	// document and AWS's RSA-2048 signature of it
	// (/latest/dynamic/instance-identity/rsa2048).
	RSA2048 string `json:"rsa2048"`
}

// Document is what an instance identity document says of its instance,
// the fields this package reads.
type Document struct {
	AccountID        string `json:"accountId"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availabilityZone"`
	InstanceID       string `json:"instanceId"`
	InstanceType     string `json:"instanceType"`
	ImageID          string `json:"imageId"`
	Architecture     string `json:"architecture"`
	PrivateIP        string `json:"privateIp"`
	Version          string `json:"version"`
}

var (
	// accountRE: AWS account IDs are 12 decimal digits.
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	// regionRE: "us-east-1", "cn-northwest-1", "us-gov-west-1",
	// "ap-southeast-4"; lower-case letters, digits and hyphens.
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	// instanceRE: "i-" and 8 or 17 hexadecimal digits (up to 32 allowed).
	instanceRE = regexp.MustCompile(`^i-[0-9a-f]{8,32}$`)
)

// marshalPayload encodes p as the agent sends it.
func marshalPayload(p Payload) ([]byte, error) {
	return json.Marshal(p)
}

// parsePayload decodes and bounds an agent's payload. It checks shapes
// only; nothing in it is trusted before a signature verifies.
func parsePayload(b []byte) (Payload, error) {
	var p Payload
	switch {
	case len(b) == 0:
		return p, errors.New("payload is empty")
	case len(b) > attest.MaxNodePayload:
		return p, fmt.Errorf("payload is larger than %d bytes", attest.MaxNodePayload)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("payload is not a JSON object of document and signatures: %w", err)
	}
	if d.More() {
		return Payload{}, errors.New("payload has data after its JSON object")
	}
	switch {
	case len(p.Document) > MaxDocumentSize:
		return Payload{}, fmt.Errorf("document is larger than %d bytes", MaxDocumentSize)
	case len(p.Signature) > MaxSignatureSize, len(p.RSA2048) > MaxSignatureSize:
		return Payload{}, fmt.Errorf("a signature is larger than %d bytes", MaxSignatureSize)
	case p.Signature == "" && p.RSA2048 == "":
		return Payload{}, errors.New("payload has no signature")
	case p.RSA2048 == "" && p.Document == "":
		return Payload{}, errors.New("payload has no document")
	}
	return p, nil
}

// parseDocument decodes an instance identity document and checks the
// fields the agent ID is made of. Other fields are checked when they
// become selectors.
func parseDocument(b []byte) (Document, error) {
	var doc Document
	if len(b) > MaxDocumentSize {
		return doc, fmt.Errorf("document is larger than %d bytes", MaxDocumentSize)
	}
	if !utf8.Valid(b) {
		return doc, errors.New("document is not UTF-8")
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return Document{}, fmt.Errorf("document is not a JSON object: %w", err)
	}
	switch {
	case !accountRE.MatchString(doc.AccountID):
		return Document{}, fmt.Errorf("document's account ID %q is not 12 digits", truncate(doc.AccountID))
	case !regionRE.MatchString(doc.Region):
		return Document{}, fmt.Errorf("document's region %q is not a region name", truncate(doc.Region))
	case !instanceRE.MatchString(doc.InstanceID):
		return Document{}, fmt.Errorf("document's instance ID %q is not an instance ID", truncate(doc.InstanceID))
	}
	return doc, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
