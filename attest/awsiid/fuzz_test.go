package awsiid

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// FuzzAttest feeds arbitrary payloads to the server: it must never panic,
// and whatever it admits it admits for the one document a test key
// signed, whatever the payload's other bytes say. Seeds: that document in
// both forms, with another document beside it, and broken ones.
func FuzzAttest(f *testing.F) {
	aws := newSigner(f, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	other := document(testAccount, testRegion, "i-0fedcba9876543210")
	seed := func(p Payload) {
		b, err := json.Marshal(p)
		require.NoError(f, err)
		f.Add(b)
	}
	seed(Payload{Document: doc, Signature: aws.Signature(f, doc), RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{Document: doc, Signature: aws.Signature(f, doc)})
	seed(Payload{Document: other, RSA2048: aws.PKCS7(f, doc)})
	seed(Payload{Document: other, Signature: aws.Signature(f, doc)})
	seed(Payload{RSA2048: "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABA=="})
	f.Add([]byte(`{"document":"{}","signature":"AAAA"}`))
	f.Add([]byte(`{"rsa2048":""}`))
	f.Add([]byte(`null`))

	srv, err := NewServer(ServerConfig{
		AccountIDs:            []string{testAccount},
		RSA2048Certificates:   certsOf(testRegion, aws),
		SignatureCertificates: certsOf(testRegion, aws),
	})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, payload []byte) {
		res, err := srv.Attest(t.Context(), td, payload, nil)
		if err != nil {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			return
		}
		require.Equal(t, "/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.Path())
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "instance:id:" + testInstance}))
	})
}

// FuzzParseDocument feeds arbitrary documents to the parser: no panic, and
// what it accepts has an agent ID's worth of well-formed fields.
func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(document(testAccount, testRegion, testInstance)))
	f.Add([]byte(`{"accountId":"123456789012","region":"us-east-1","instanceId":"i-01234567"}`))
	f.Add([]byte(`{"accountId":123}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := parseDocument(b)
		if err != nil {
			return
		}
		require.Regexp(t, accountRE, doc.AccountID)
		require.Regexp(t, regionRE, doc.Region)
		require.Regexp(t, instanceRE, doc.InstanceID)
		selectors(doc) // never panics
	})
}

// FuzzDescription feeds arbitrary DescribeInstances results (as the SDK
// would have parsed them, given here as JSON) and instance profile ARNs to
// the checks of the lookup: they must never panic, and what they accept
// is the signed document's instance, with well-formed selectors.
func FuzzDescription(f *testing.F) {
	now := time.Now().UTC().Format(time.RFC3339)
	f.Add(`{"Reservations":[{"OwnerId":"`+testAccount+`","Instances":[{"InstanceId":"`+testInstance+`","RootDeviceType":"ebs","RootDeviceName":"/dev/xvda",`+
		`"BlockDeviceMappings":[{"DeviceName":"/dev/xvda","Ebs":{"AttachTime":"`+now+`"}}],`+
		`"NetworkInterfaces":[{"Attachment":{"DeviceIndex":0,"AttachTime":"`+now+`"}}],`+
		`"Tags":[{"Key":"Name","Value":"blog"}],"SecurityGroups":[{"GroupId":"sg-1","GroupName":"web"}]}]}]}`, testProfile)
	f.Add(`{"Reservations":[{"Instances":[{"InstanceId":"`+testInstance+`","RootDeviceType":"instance-store","NetworkInterfaces":[{"Attachment":{"DeviceIndex":0}}]}]}]}`, "arn:aws:iam::123456789012:instance-profile/")
	f.Add(`{"Reservations":[{"Instances":[{"NetworkInterfaces":[{}]}]},{"Instances":[]}]}`, "arn:aws-cn:iam::123456789012:instance-profile/a/b/c")
	f.Add(`{"Reservations":[{"OwnerId":"210987654321"}]}`, "blog")
	f.Fuzz(func(t *testing.T, description, profileARN string) {
		doc := Document{AccountID: testAccount, Region: testRegion, InstanceID: testInstance}
		if name, err := parseProfileARN(profileARN, doc); err == nil {
			require.True(t, strings.HasSuffix(profileARN, "/"+name))
			require.Contains(t, profileARN, ":"+testAccount+":")
		} else {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
		}
		var out ec2.DescribeInstancesOutput
		if json.Unmarshal([]byte(description), &out) != nil {
			return
		}
		for _, skip := range []bool{false, true} {
			inst, sels, err := describe(&out, doc, skip)
			if err != nil {
				require.ErrorIs(t, err, attest.ErrNodeRejected)
				continue
			}
			require.Equal(t, testInstance, *inst.InstanceId)
			for _, sel := range sels {
				require.NoError(t, sel.Validate())
			}
		}
	})
}
