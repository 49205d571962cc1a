// Package awstest stands for the AWS APIs the aws_iid server reads, for
// tests: EC2's DescribeInstances, IAM's GetInstanceProfile and STS's
// AssumeRole, spoken as AWS documents them (the Query protocol: an HTTP
// POST of a form with Action and Version, answered with the XML AWS
// documents for the action, and AWS's XML error shapes). A client points
// at it through the SDK's base endpoint; one server answers all three
// services. Each request must carry an AWS Signature Version 4
// Authorization header by credentials the server issued ([Server.Key],
// or those AssumeRole returned): the server checks the signature, and
// records the service and region it was made for. Test only.
package awstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Versions of the APIs, as the SDK sends them.
const (
	EC2Version = "2016-11-15"
	IAMVersion = "2010-05-08"
	STSVersion = "2011-06-15"
)

// Instance is what DescribeInstances says of an instance.
type Instance struct {
	// ID is the instance ID ("i-0123456789abcdef0").
	ID string
	// AccountID owns the instance's reservation.
	AccountID string
	// State is the instance state's name; empty means "running".
	State string
	// Tags are the instance's tags, in order.
	Tags [][2]string
	// SecurityGroups are ID and name pairs.
	SecurityGroups [][2]string
	// InstanceProfileARN, if not empty, is the IAM instance profile.
	InstanceProfileARN string
	// LaunchTime is when the instance started; zero means an hour ago.
	LaunchTime time.Time
	// RootDeviceType is "ebs" (the default) or "instance-store".
	RootDeviceType string
	// RootAttachTime is when the root volume was attached; zero means
	// LaunchTime.
	RootAttachTime time.Time
	// NoNetworkInterface leaves the network interfaces out.
	NoNetworkInterface bool
	// NoRootMapping leaves the root device's block device mapping out.
	NoRootMapping bool
}

// RootDeviceName is the root device of every instance.
const RootDeviceName = "/dev/xvda"

// Key is a pair of AWS credentials.
type Key struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Server is a running fake of the EC2, IAM and STS APIs.
type Server struct {
	*httptest.Server

	key Key

	mu        sync.Mutex
	instances map[string]Instance
	profiles  map[string]string // instance profile name to GetInstanceProfileResult XML
	roles     map[string]Key    // role ARN to its credentials
	keys      map[string]Key    // access key ID to key
	raw       map[string]rawResponse
	calls     []Call
	hang      chan struct{}
}

// rawResponse is a response served for an action instead of its own.
type rawResponse struct {
	status int
	body   string
}

// Call is a request the server answered.
type Call struct {
	// Action is the Query action ("DescribeInstances").
	Action string
	// Service and Region are those the request was signed for.
	Service, Region string
	// AccessKeyID signed the request.
	AccessKeyID string
	// Form is the request's form.
	Form url.Values
}

// Start runs the fake on a loopback port until the test ends. It knows
// no instance, profile or role; its key is [Server.Key].
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		key:       Key{AccessKeyID: "AKIDEXAMPLE" + randomHex(t, 4), SecretAccessKey: randomHex(t, 20)},
		instances: map[string]Instance{},
		profiles:  map[string]string{},
		roles:     map[string]Key{},
		keys:      map[string]Key{},
		raw:       map[string]rawResponse{},
		hang:      make(chan struct{}),
	}
	s.keys[s.key.AccessKeyID] = s.key
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.hang)
		s.Close()
	})
	return s
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// Key returns the credentials the server accepts from the start.
func (s *Server) Key() Key { return s.key }

// AddInstance makes DescribeInstances describe inst.
func (s *Server) AddInstance(inst Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[inst.ID] = inst
}

// AddInstanceProfile makes GetInstanceProfile describe the profile of
// arn ("arn:aws:iam::123456789012:instance-profile/path/name"), with the
// roles of roleARNs.
func (s *Server) AddInstanceProfile(arn string, roleARNs ...string) {
	name := arn[strings.LastIndex(arn, "/")+1:]
	var b strings.Builder
	b.WriteString("<InstanceProfile><InstanceProfileId>" + ProfileID + "</InstanceProfileId><Roles>")
	for _, r := range roleARNs {
		fmt.Fprintf(&b, "<member><Path>/</Path><Arn>%s</Arn><RoleName>%s</RoleName><AssumeRolePolicyDocument>%%7B%%7D</AssumeRolePolicyDocument><CreateDate>2024-01-02T03:04:05Z</CreateDate><RoleId>AROAEXAMPLE</RoleId></member>",
			esc(r), esc(r[strings.LastIndex(r, "/")+1:]))
	}
	fmt.Fprintf(&b, "</Roles><InstanceProfileName>%s</InstanceProfileName><Path>/</Path><Arn>%s</Arn><CreateDate>2024-01-02T03:04:05Z</CreateDate></InstanceProfile>", esc(name), esc(arn))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[name] = b.String()
}

// ProfileID is the ID of every instance profile, unless
// [Server.SetProfileID] changed it.
const ProfileID = "AIPAEXAMPLE0123456789"

// SetProfileID makes GetInstanceProfile of name give the profile another
// ID, as if it had been deleted and made again since its instance was
// given it.
func (s *Server) SetProfileID(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[name] = strings.Replace(s.profiles[name], ProfileID, id, 1)
}

// AddRole makes AssumeRole of roleARN return new credentials, which the
// server then accepts.
func (s *Server) AddRole(t testing.TB, roleARN string) {
	k := Key{AccessKeyID: "ASIAEXAMPLE" + randomHex(t, 4), SecretAccessKey: randomHex(t, 20), SessionToken: randomHex(t, 32)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = k
}

// Hang, as a raw body, makes the server never answer the action (until
// the request or the test ends).
const Hang = "<hang>"

// Chunked, as the status of a raw response, sends it with status 200 and
// without a Content-Length, so that its length is known only as it is read.
const Chunked = -1

// SetRaw makes the server answer action with status and body instead of
// its own response, with the body's Content-Length unless status is
// [Chunked].
func (s *Server) SetRaw(action string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw[action] = rawResponse{status, body}
}

// Calls returns the requests answered so far (with a valid signature).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsOf returns the calls of action.
func (s *Server) CallsOf(action string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// credentialRE reads the credential scope of a Signature Version 4
// Authorization header.
var credentialRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		queryError(w, "", http.StatusBadRequest, "InvalidAction", "want a POST of a form to /")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		queryError(w, "", http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	action := form.Get("Action")
	call, code, msg := s.authenticate(r, body)
	if code != "" {
		queryError(w, action, http.StatusForbidden, code, msg)
		return
	}
	call.Action, call.Form = action, form
	s.mu.Lock()
	s.calls = append(s.calls, call)
	raw, isRaw := s.raw[action]
	s.mu.Unlock()
	if isRaw {
		if raw.body == Hang {
			select {
			case <-r.Context().Done():
			case <-s.hang:
			}
			return
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		if raw.status != Chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(raw.body)))
			w.WriteHeader(raw.status)
		}
		io.WriteString(w, raw.body)
		return
	}
	switch {
	case action == "DescribeInstances" && call.Service == "ec2" && form.Get("Version") == EC2Version:
		s.describeInstances(w, form)
	case action == "GetInstanceProfile" && call.Service == "iam" && form.Get("Version") == IAMVersion:
		s.getInstanceProfile(w, form)
	case action == "AssumeRole" && call.Service == "sts" && form.Get("Version") == STSVersion:
		s.assumeRole(w, form)
	default:
		queryError(w, action, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("no action %q of version %q for service %q", action, form.Get("Version"), call.Service))
	}
}

// authenticate checks r's Signature Version 4 signature by signing the
// same request again with the key its credential names. It returns an
// AWS error code and message when the signature does not hold.
func (s *Server) authenticate(r *http.Request, body []byte) (Call, string, string) {
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return Call{}, "MissingAuthenticationToken", "the request has no Signature Version 4 Authorization header"
	}
	akid, service, region, signed := m[1], m[4], m[3], m[5]
	s.mu.Lock()
	key, ok := s.keys[akid]
	s.mu.Unlock()
	if !ok {
		return Call{}, "InvalidClientTokenId", "the security token included in the request is invalid"
	}
	if key.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != key.SessionToken {
		return Call{}, "InvalidClientTokenId", "the session token is missing or wrong"
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return Call{}, "IncompleteSignature", "no X-Amz-Date"
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return Call{}, "IncompleteSignature", err.Error()
	}
	for _, h := range strings.Split(signed, ";") {
		if h == "host" {
			continue
		}
		again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, SessionToken: key.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, service, region, when); err != nil {
		return Call{}, "IncompleteSignature", err.Error()
	}
	if again.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return Call{}, "SignatureDoesNotMatch", "the request signature we calculated does not match the signature you provided"
	}
	return Call{Service: service, Region: region, AccessKeyID: akid}, "", ""
}

// describeInstances answers DescribeInstances of the InstanceId.N
// parameters, filtered by instance-state-name if asked, as EC2 does: an
// ID it does not know is InvalidInstanceID.NotFound.
func (s *Server) describeInstances(w http.ResponseWriter, form url.Values) {
	var ids []string
	for i := 1; form.Has("InstanceId." + strconv.Itoa(i)); i++ {
		ids = append(ids, form.Get("InstanceId."+strconv.Itoa(i)))
	}
	states := map[string]bool{}
	for i := 1; form.Has("Filter." + strconv.Itoa(i) + ".Name"); i++ {
		p := "Filter." + strconv.Itoa(i)
		if form.Get(p+".Name") != "instance-state-name" {
			queryError(w, "DescribeInstances", http.StatusBadRequest, "InvalidParameterValue", "this fake filters on instance-state-name only")
			return
		}
		for j := 1; form.Has(p + ".Value." + strconv.Itoa(j)); j++ {
			states[form.Get(p+".Value."+strconv.Itoa(j))] = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/%s/"><requestId>%s</requestId><reservationSet>`, EC2Version, requestID())
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		inst, ok := s.instances[id]
		if !ok {
			queryError(w, "DescribeInstances", http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
		if inst.State == "" {
			inst.State = "running"
		}
		if len(states) > 0 && !states[inst.State] {
			continue
		}
		writeReservation(&b, inst)
	}
	b.WriteString("</reservationSet></DescribeInstancesResponse>")
	writeXML(w, b.String())
}

// writeReservation writes the reservation of inst as DescribeInstances
// does.
func writeReservation(b *strings.Builder, inst Instance) {
	launch := inst.LaunchTime
	if launch.IsZero() {
		launch = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	rootAttach := inst.RootAttachTime
	if rootAttach.IsZero() {
		rootAttach = launch
	}
	rootType := inst.RootDeviceType
	if rootType == "" {
		rootType = "ebs"
	}
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	fmt.Fprintf(b, "<item><reservationId>r-0123456789abcdef0</reservationId><ownerId>%s</ownerId><groupSet/><instancesSet><item>", esc(inst.AccountID))
	fmt.Fprintf(b, "<instanceId>%s</instanceId><imageId>ami-0123456789abcdef0</imageId><instanceState><code>16</code><name>%s</name></instanceState>", esc(inst.ID), esc(inst.State))
	fmt.Fprintf(b, "<privateDnsName>ip-10-0-0-1.ec2.internal</privateDnsName><instanceType>t3.micro</instanceType><launchTime>%s</launchTime>", ts(launch))
	b.WriteString("<placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement><subnetId>subnet-0123456789abcdef0</subnetId><vpcId>vpc-0123456789abcdef0</vpcId><privateIpAddress>10.0.0.1</privateIpAddress>")
	b.WriteString("<groupSet>")
	for _, g := range inst.SecurityGroups {
		fmt.Fprintf(b, "<item><groupId>%s</groupId><groupName>%s</groupName></item>", esc(g[0]), esc(g[1]))
	}
	b.WriteString("</groupSet><architecture>x86_64</architecture>")
	fmt.Fprintf(b, "<rootDeviceType>%s</rootDeviceType><rootDeviceName>%s</rootDeviceName><blockDeviceMapping>", esc(rootType), RootDeviceName)
	if !inst.NoRootMapping {
		fmt.Fprintf(b, "<item><deviceName>%s</deviceName><ebs><volumeId>vol-0123456789abcdef0</volumeId><status>attached</status><attachTime>%s</attachTime><deleteOnTermination>true</deleteOnTermination></ebs></item>", RootDeviceName, ts(rootAttach))
	}
	b.WriteString("</blockDeviceMapping>")
	if inst.InstanceProfileARN != "" {
		fmt.Fprintf(b, "<iamInstanceProfile><arn>%s</arn><id>%s</id></iamInstanceProfile>", esc(inst.InstanceProfileARN), ProfileID)
	}
	b.WriteString("<tagSet>")
	for _, tag := range inst.Tags {
		fmt.Fprintf(b, "<item><key>%s</key><value>%s</value></item>", esc(tag[0]), esc(tag[1]))
	}
	b.WriteString("</tagSet><networkInterfaceSet>")
	if !inst.NoNetworkInterface {
		fmt.Fprintf(b, "<item><networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId><status>in-use</status><attachment><attachmentId>eni-attach-0123456789abcdef0</attachmentId><deviceIndex>0</deviceIndex><status>attached</status><attachTime>%s</attachTime><deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex></attachment></item>", ts(launch))
	}
	b.WriteString("</networkInterfaceSet></item></instancesSet></item>")
}

// getInstanceProfile answers GetInstanceProfile of InstanceProfileName:
// NoSuchEntity (404) for a name it does not know.
func (s *Server) getInstanceProfile(w http.ResponseWriter, form url.Values) {
	name := form.Get("InstanceProfileName")
	s.mu.Lock()
	p, ok := s.profiles[name]
	s.mu.Unlock()
	if !ok {
		queryError(w, "GetInstanceProfile", http.StatusNotFound, "NoSuchEntity", fmt.Sprintf("Instance Profile %s cannot be found.", name))
		return
	}
	writeXML(w, fmt.Sprintf(`<GetInstanceProfileResponse xmlns="https://iam.amazonaws.com/doc/%s/"><GetInstanceProfileResult>%s</GetInstanceProfileResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></GetInstanceProfileResponse>`, IAMVersion, p, requestID()))
}

// assumeRole answers AssumeRole of RoleArn with the role's credentials:
// AccessDenied for a role it does not know.
func (s *Server) assumeRole(w http.ResponseWriter, form url.Values) {
	arn := form.Get("RoleArn")
	s.mu.Lock()
	k, ok := s.roles[arn]
	if ok {
		s.keys[k.AccessKeyID] = k
	}
	s.mu.Unlock()
	if !ok || form.Get("RoleSessionName") == "" {
		queryError(w, "AssumeRole", http.StatusForbidden, "AccessDenied", fmt.Sprintf("not authorized to perform sts:AssumeRole on resource %s", arn))
		return
	}
	writeXML(w, fmt.Sprintf(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/%s/"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:%s</AssumedRoleId><Arn>%s</Arn></AssumedRoleUser><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials></AssumeRoleResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		STSVersion, esc(form.Get("RoleSessionName")), esc(arn), k.AccessKeyID, k.SecretAccessKey, k.SessionToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), requestID()))
}

// queryError writes an AWS error: EC2's <Response><Errors> shape for EC2
// actions, the Query protocol's <ErrorResponse> for the others.
func queryError(w http.ResponseWriter, action string, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	if action == "DescribeInstances" {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`, esc(code), esc(msg), requestID())
		return
	}
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/%s/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, IAMVersion, esc(code), esc(msg), requestID())
}

func writeXML(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, body)
}

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func requestID() string { return "59dbff89-35bd-4eac-99ed-be587EXAMPLE" }
