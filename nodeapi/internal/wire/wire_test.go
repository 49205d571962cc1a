package wire_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func validPBEntry() *nodepb.Entry {
	return &nodepb.Entry{
		Id:        "0123456789abcdef0123456789abcdef",
		SpiffeId:  "spiffe://example.org/web",
		ParentId:  "spiffe://example.org/spiffekit/agent/x",
		Selectors: []*nodepb.Selector{{Type: "unix", Value: "uid:1000"}},
		Revision:  1,
	}
}

// An entry from a server of an earlier version, which still sends the
// admin and downstream flags (fields 9 and 10, now reserved), is taken
// as the same entry without them.
func TestEntryFromOlderServer(t *testing.T) {
	b, err := proto.Marshal(validPBEntry())
	require.NoError(t, err)
	b = protowire.AppendTag(b, 9, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 10, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	var p nodepb.Entry
	require.NoError(t, proto.Unmarshal(b, &p))
	got, err := wire.EntryFromPB(&p)
	require.NoError(t, err)
	want, err := wire.EntryFromPB(validPBEntry())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// Property: the client takes from the wire only entries that satisfy the
// registry's own rules and limits.
func TestEntryFromPBRejectsMalformed(t *testing.T) {
	e, err := wire.EntryFromPB(validPBEntry())
	require.NoError(t, err, "the base row must be valid")
	require.Equal(t, "/web", e.SPIFFEID.Path())
	// Each row fails for its own cause: the message, after "nodeapi: entry
	// <ID>: " where the ID is valid, and registry.ErrInvalid where the
	// registry's own validation refuses it.
	const prefix = "nodeapi: entry 0123456789abcdef0123456789abcdef: "
	for _, tt := range []struct {
		name    string
		mod     func(*nodepb.Entry)
		want    string
		invalid bool
	}{
		{"bad ID", func(p *nodepb.Entry) { p.Id = "../x" }, `nodeapi: invalid entry ID "../x"`, false},
		{"long bad ID, truncated in the message", func(p *nodepb.Entry) { p.Id = strings.Repeat("/", 100) },
			`nodeapi: invalid entry ID "` + strings.Repeat("/", 64) + `..."`, false},
		{"bad SPIFFE ID", func(p *nodepb.Entry) { p.SpiffeId = "https://example.org/web" }, prefix + "spiffeid: scheme is missing or invalid", false},
		{"bad parent", func(p *nodepb.Entry) { p.ParentId = "" }, prefix + "parent: spiffeid: cannot be empty", false},
		{"negative TTL", func(p *nodepb.Entry) { p.X509SvidTtlSeconds = -1 }, prefix + "TTL out of range", false},
		{"huge TTL", func(p *nodepb.Entry) { p.JwtSvidTtlSeconds = 1 << 40 }, prefix + "TTL out of range", false},
		{"too many selectors", func(p *nodepb.Entry) {
			for i := range registry.MaxSelectors + 1 {
				p.Selectors = append(p.Selectors, &nodepb.Selector{Type: "unix", Value: "uid:" + strings.Repeat("1", i+1)})
			}
		}, prefix + "too many selectors", false},
		{"nil selector", func(p *nodepb.Entry) { p.Selectors = append(p.Selectors, nil) }, prefix + "empty selector", false},
		{"no selector", func(p *nodepb.Entry) { p.Selectors = nil }, prefix + "registry: entry has no selectors", true},
		{"too many federates", func(p *nodepb.Entry) {
			p.FederatesWith = make([]string, registry.MaxFederatesWith+1)
		}, prefix + "too many federated trust domains", false},
		{"bad federated trust domain", func(p *nodepb.Entry) { p.FederatesWith = []string{"Not A TD"} },
			prefix + "federates with: spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores", false},
		{"zero revision", func(p *nodepb.Entry) { p.Revision = 0 }, prefix + "revision must be positive", false},
		{"negative expiry", func(p *nodepb.Entry) { p.ExpiresAtUnix = -1 }, prefix + "expiry -1 out of range", false},
		{"expiry past year 9999", func(p *nodepb.Entry) { p.ExpiresAtUnix = registry.MaxExpiry.Unix() + 1 },
			prefix + fmt.Sprintf("expiry %d out of range", registry.MaxExpiry.Unix()+1), false},
		{"huge expiry", func(p *nodepb.Entry) { p.ExpiresAtUnix = 1 << 62 }, prefix + fmt.Sprintf("expiry %d out of range", int64(1)<<62), false},
		{"hint too long", func(p *nodepb.Entry) { p.Hint = strings.Repeat("h", registry.MaxHintLen+1) },
			prefix + fmt.Sprintf("registry: entry hint is longer than %d bytes", registry.MaxHintLen), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := validPBEntry()
			tt.mod(p)
			_, err := wire.EntryFromPB(p)
			require.EqualError(t, err, tt.want)
			assert.Equal(t, tt.invalid, errors.Is(err, registry.ErrInvalid), "%v", err)
		})
	}
	_, err = wire.EntryFromPB(nil)
	assert.EqualError(t, err, "nodeapi: empty entry")
}

// An entry's expiry crosses the wire to the second; none stays none.
func TestEntryExpiry(t *testing.T) {
	e, err := wire.EntryFromPB(validPBEntry())
	require.NoError(t, err)
	assert.True(t, e.ExpiresAt.IsZero())
	assert.Zero(t, wire.EntryToPB(e).ExpiresAtUnix)
	for _, at := range []time.Time{registry.MinExpiry, time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC), registry.MaxExpiry} {
		e.ExpiresAt = at
		pb := wire.EntryToPB(e)
		assert.Equal(t, at.Unix(), pb.ExpiresAtUnix)
		got, err := wire.EntryFromPB(pb)
		require.NoError(t, err)
		assert.Equal(t, e, got)
		assert.Equal(t, time.UTC, got.ExpiresAt.Location())
	}
}

// FuzzEntryRoundTrip checks that an entry accepted from the wire converts
// back to the same wire form and to an equal entry.
func FuzzEntryRoundTrip(f *testing.F) {
	seed, err := proto.Marshal(validPBEntry())
	require.NoError(f, err)
	f.Add(seed)
	withExpiry := validPBEntry()
	withExpiry.ExpiresAtUnix = 1924992000
	seed, err = proto.Marshal(withExpiry)
	require.NoError(f, err)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p nodepb.Entry
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		e, err := wire.EntryFromPB(&p)
		if err != nil {
			return
		}
		pb := wire.EntryToPB(e)
		again, err := wire.EntryFromPB(pb)
		require.NoError(t, err)
		require.Equal(t, e, again)
		require.True(t, proto.Equal(pb, wire.EntryToPB(again)))
	})
}

func TestChainToDER(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	chain, _ := ca.NewLeaf(t, spiffeid.RequireFromString("spiffe://example.org/web"))
	ders := wire.ChainToDER(append(chain, ca.Cert()))
	require.Len(t, ders, len(chain)+1)
	for i, c := range append(chain, ca.Cert()) {
		assert.Equal(t, c.Raw, ders[i])
	}
	assert.Empty(t, wire.ChainToDER([]*x509.Certificate{}))
}

func TestTruncate(t *testing.T) {
	assert.Equal(t, "short", wire.Truncate("short"))
	assert.Equal(t, strings.Repeat("a", 64), wire.Truncate(strings.Repeat("a", 64)))
	assert.Equal(t, strings.Repeat("a", 64)+"...", wire.Truncate(strings.Repeat("a", 65)))
}
