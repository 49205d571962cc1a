package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
)

func validX509Authority() registry.ServerAuthority {
	return registry.ServerAuthority{
		Kind: registry.AuthorityX509, ID: "0a1b2c", State: registry.AuthorityOld,
		NotAfter: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Certificate: []byte{0x30, 0x00},
	}
}

func TestServerAuthorityValidate(t *testing.T) {
	require.NoError(t, validX509Authority().Validate())
	tests := []struct {
		name    string
		mod     func(*registry.ServerAuthority)
		wantErr string
	}{
		{"JWT key", func(a *registry.ServerAuthority) { a.Kind, a.Certificate = registry.AuthorityJWT, nil }, ""},
		{"longest ID", func(a *registry.ServerAuthority) { a.ID = strings.Repeat("a", registry.MaxAuthorityIDLen) }, ""},
		{"largest certificate", func(a *registry.ServerAuthority) { a.Certificate = make([]byte, registry.MaxAuthorityCertificate) }, ""},
		{"WIT key", func(a *registry.ServerAuthority) { a.Kind, a.Certificate = registry.AuthorityWIT, nil }, ""},
		{"unknown kind", func(a *registry.ServerAuthority) { a.Kind = "ssh" }, `authority kind "ssh" is none of "x509", "jwt" and "wit"`},
		{"no ID", func(a *registry.ServerAuthority) { a.ID = "" }, "authority ID is missing"},
		{"ID too long", func(a *registry.ServerAuthority) { a.ID = strings.Repeat("a", registry.MaxAuthorityIDLen+1) }, "longer than"},
		{"ID with control character", func(a *registry.ServerAuthority) { a.ID = "a\tb" }, "not UTF-8 text"},
		{"unknown state", func(a *registry.ServerAuthority) { a.State = "retired" }, `unknown state "retired"`},
		{"no expiry", func(a *registry.ServerAuthority) { a.NotAfter = time.Time{} }, "expiry is missing"},
		{"expiry after 9999", func(a *registry.ServerAuthority) { a.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "expiry is missing or not between"},
		{"X.509 CA without certificate", func(a *registry.ServerAuthority) { a.Certificate = nil }, "has no certificate"},
		{"JWT key with certificate", func(a *registry.ServerAuthority) { a.Kind = registry.AuthorityJWT }, "JWT authority 0a1b2c has a certificate"},
		{"WIT key with certificate", func(a *registry.ServerAuthority) { a.Kind = registry.AuthorityWIT }, "WIT authority 0a1b2c has a certificate"},
		{"certificate too large", func(a *registry.ServerAuthority) { a.Certificate = make([]byte, registry.MaxAuthorityCertificate+1) }, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validX509Authority()
			tt.mod(&a)
			err := a.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestServerBundleAuthorities(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	b := registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
		Authorities: []registry.ServerAuthority{validX509Authority()}}
	require.NoError(t, b.Validate())

	jwt := validX509Authority()
	jwt.Kind, jwt.Certificate = registry.AuthorityJWT, nil
	b.Authorities = append(b.Authorities, jwt)
	require.NoError(t, b.Validate(), "one ID may name an authority of each kind")

	b.Authorities = append(b.Authorities, validX509Authority())
	err := b.Validate()
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorContains(t, err, "describes x509 authority 0a1b2c twice")

	bad := validX509Authority()
	bad.State = ""
	b.Authorities = []registry.ServerAuthority{bad}
	require.ErrorIs(t, b.Validate(), registry.ErrInvalid)

	b.Authorities = make([]registry.ServerAuthority, registry.MaxServerAuthorities+1)
	require.ErrorContains(t, b.Validate(), "at most 96 are allowed")

	// Clone copies the descriptions and their certificates.
	b.Authorities = []registry.ServerAuthority{validX509Authority()}
	c := b.Clone()
	c.Authorities[0].Certificate[0] = 0xff
	c.Authorities[0].State = registry.AuthorityActive
	assert.Equal(t, byte(0x30), b.Authorities[0].Certificate[0])
	assert.Equal(t, registry.AuthorityOld, b.Authorities[0].State)
	assert.Nil(t, registry.ServerBundle{}.Clone().Authorities)

	// Prepare keeps one form for "none" and store times.
	now := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	sb, err := registry.PrepareServerBundle(registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
		Authorities: []registry.ServerAuthority{}}, now)
	require.NoError(t, err)
	assert.Nil(t, sb.Authorities)
	a := jwt
	a.NotAfter = now
	a.Certificate = []byte{}
	sb, err = registry.PrepareServerBundle(registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
		Authorities: []registry.ServerAuthority{a}}, now)
	require.NoError(t, err)
	assert.Equal(t, registry.StoreTime(now), sb.Authorities[0].NotAfter)
	assert.Nil(t, sb.Authorities[0].Certificate)
}

func TestAuthorityMarkValidate(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	valid := registry.AuthorityMark{ServerID: "server 1", Kind: registry.AuthorityJWT, AuthorityID: "kid-1", ExpiresAt: exp}
	require.NoError(t, valid.Validate())
	wit := valid
	wit.Kind = registry.AuthorityWIT
	require.NoError(t, wit.Validate(), "a WIT key may be marked")
	tests := []struct {
		name    string
		mod     func(*registry.AuthorityMark)
		wantErr string
	}{
		{"no server ID", func(m *registry.AuthorityMark) { m.ServerID = "" }, "server ID is missing"},
		{"server ID too long", func(m *registry.AuthorityMark) { m.ServerID = strings.Repeat("s", registry.MaxServerIDLen+1) }, "server ID is longer"},
		{"server ID with newline", func(m *registry.AuthorityMark) { m.ServerID = "a\nb" }, "server ID is not UTF-8"},
		{"unknown kind", func(m *registry.AuthorityMark) { m.Kind = "" }, "kind \"\" is none of"},
		{"no authority ID", func(m *registry.AuthorityMark) { m.AuthorityID = "" }, "authority ID is missing"},
		{"authority ID too long", func(m *registry.AuthorityMark) { m.AuthorityID = strings.Repeat("a", registry.MaxAuthorityIDLen+1) }, "authority ID is longer"},
		{"authority ID not UTF-8", func(m *registry.AuthorityMark) { m.AuthorityID = "\xc0\xaf" }, "authority ID is not UTF-8"},
		{"no expiry", func(m *registry.AuthorityMark) { m.ExpiresAt = time.Time{} }, "expiry is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid
			tt.mod(&m)
			err := m.Validate()
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: authority mark ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	now := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	m, err := registry.PrepareAuthorityMark(registry.AuthorityMark{ServerID: "s", Kind: registry.AuthorityX509, AuthorityID: "ab", ExpiresAt: now, Revoked: true}, now)
	require.NoError(t, err)
	assert.Equal(t, registry.StoreTime(now), m.ExpiresAt)
	assert.Equal(t, registry.StoreTime(now), m.UpdatedAt)
	assert.True(t, m.Revoked)
	_, err = registry.PrepareAuthorityMark(registry.AuthorityMark{}, now)
	require.ErrorIs(t, err, registry.ErrInvalid)
}
