package azuremsi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
)

// MaxTokenSize bounds the token, well above the 1.5 to 3 KB of a managed
// identity's access token.
const MaxTokenSize = 16 << 10

// Payload is the agent's message, SPIRE's azure_msi payload, so that
// agents and servers of either project interoperate.
type Payload struct {
	// Token is the managed identity's access token, a JWT, as the
	// instance metadata service returned it.
	Token string `json:"token"`
}

// Claims are the claims of a managed identity's access token this package
// reads.
type Claims struct {
	jwt.Claims

	// TenantID is the Microsoft Entra tenant of the identity ("tid").
	TenantID string `json:"tid"`

	// ResourceID is the Azure resource ID of the managed identity
	// ("xms_mirid"): the VM's or scale set's for a system-assigned
	// identity, the identity's own for a user-assigned one. Azure sets it;
	// it may be absent.
	ResourceID string `json:"xms_mirid"`
}

// guidRE: tenant and principal IDs are GUIDs in lower case, as Entra
// writes them into tokens.
var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// marshalPayload encodes p as the agent sends it.
func marshalPayload(p Payload) ([]byte, error) {
	return json.Marshal(p)
}

// parsePayload decodes and bounds an agent's payload. It checks shapes
// only; nothing in it is trusted before the token's signature verifies.
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
		return Payload{}, fmt.Errorf("payload is not a JSON object with a token: %w", err)
	}
	if d.More() {
		return Payload{}, errors.New("payload has data after its JSON object")
	}
	switch {
	case p.Token == "":
		return Payload{}, errors.New("payload has no token")
	case len(p.Token) > MaxTokenSize:
		return Payload{}, fmt.Errorf("token is larger than %d bytes", MaxTokenSize)
	}
	return p, nil
}

// Resource IDs: /subscriptions/<sub>/resourceGroups/<group>/providers/
// <namespace>/<type>/<name>[/<type>/<name>...]. Azure writes the fixed
// segments in varying case ("resourcegroups"), so they are compared
// without case.
var (
	subscriptionRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// groupRE: letters, digits, underscores, hyphens, periods and
	// parentheses, up to 90 characters, Azure's rule for resource groups.
	groupRE = regexp.MustCompile(`^[-\w.()]{1,90}$`)
	// nameRE: a VM or scale set name, up to 64 characters of letters,
	// digits, hyphens, underscores and periods.
	nameRE = regexp.MustCompile(`^[-\w.]{1,64}$`)
)

// Resource is what an Azure resource ID names, when it names a VM or a
// VM scale set.
type Resource struct {
	Subscription  string
	ResourceGroup string
	VMName        string // a VM's
	ScaleSet      string // a scale set's
}

// ParseResourceID parses the resource ID of a VM
// (.../providers/Microsoft.Compute/virtualMachines/<name>) or of a VM
// scale set (.../providers/Microsoft.Compute/virtualMachineScaleSets/
// <name>), as xms_mirid names a system-assigned identity's resource. It
// refuses anything else, and values outside Azure's naming rules.
func ParseResourceID(id string) (Resource, error) {
	if len(id) > 1024 {
		return Resource{}, errors.New("resource ID is longer than 1024 bytes")
	}
	parts := strings.Split(id, "/")
	if len(parts) != 9 || parts[0] != "" ||
		!strings.EqualFold(parts[1], "subscriptions") ||
		!strings.EqualFold(parts[3], "resourceGroups") ||
		!strings.EqualFold(parts[5], "providers") ||
		!strings.EqualFold(parts[6], "Microsoft.Compute") {
		return Resource{}, fmt.Errorf("resource ID %s is not of a VM or scale set", azuremeta.Truncate(id))
	}
	r := Resource{Subscription: strings.ToLower(parts[2]), ResourceGroup: parts[4]}
	switch {
	case strings.EqualFold(parts[7], "virtualMachines"):
		r.VMName = parts[8]
	case strings.EqualFold(parts[7], "virtualMachineScaleSets"):
		r.ScaleSet = parts[8]
	default:
		return Resource{}, fmt.Errorf("resource ID %s is not of a VM or scale set", azuremeta.Truncate(id))
	}
	switch {
	case !subscriptionRE.MatchString(r.Subscription):
		return Resource{}, fmt.Errorf("resource ID's subscription %s is not a GUID", azuremeta.Truncate(r.Subscription))
	case !groupRE.MatchString(r.ResourceGroup):
		return Resource{}, fmt.Errorf("resource ID's resource group %s is not a group name", azuremeta.Truncate(r.ResourceGroup))
	case !nameRE.MatchString(r.VMName + r.ScaleSet):
		return Resource{}, fmt.Errorf("resource ID's name %s is not a VM name", azuremeta.Truncate(r.VMName+r.ScaleSet))
	}
	return r, nil
}
