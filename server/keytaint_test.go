package server_test

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// headerKID returns the kid of a compact JWS's header.
func headerKID(t *testing.T, token string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.SplitN(token, ".", 2)[0])
	require.NoError(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	require.NotEmpty(t, h.Kid)
	return h.Kid
}

// Property: a JWT or WIT key tainted through the admin API reaches the
// agents, which stop serving what it signed: the workload's next
// JWT-SVID and WIT-SVID are signed by the active key, and an open
// FetchWITSVID stream receives a new WIT-SVID, long before the half life
// of the tokens the agent held.
func TestTaintedKeysReachTheWorkload(t *testing.T) {
	s := start(t, server.Config{WITSVIDs: true})
	cfg := s.AgentConfig(t)
	cfg.WITSVIDs = true
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	ctx := t.Context()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	defer c.Close()

	fetchJWT := func() string {
		t.Helper()
		svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
		require.NoError(t, err)
		return headerKID(t, svid.Marshal())
	}
	fetchWIT := func() string {
		t.Helper()
		svid, err := c.FetchWITSVID(ctx, "")
		require.NoError(t, err)
		return headerKID(t, svid.Marshal())
	}
	jwtKey := fetchJWT()
	witKey := fetchWIT()
	src, err := workloadapi.NewWITSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(a.Addr)))
	require.NoError(t, err)
	defer src.Close()
	streamed := func() string {
		t.Helper()
		svid, err := src.GetWITSVIDForID(web.SPIFFEID)
		require.NoError(t, err)
		return headerKID(t, svid.Marshal())
	}
	require.Equal(t, witKey, streamed())

	// A new key signs from now on; the agent, which cannot know which key
	// signs, keeps what the old one signed until its half life.
	require.Equal(t, jwtKey, rotate(t, s, registry.AuthorityJWT))
	require.Equal(t, witKey, rotate(t, s, registry.AuthorityWIT))
	newJWT, newWIT := activeID(t, s, registry.AuthorityJWT), activeID(t, s, registry.AuthorityWIT)
	assert.Equal(t, jwtKey, fetchJWT(), "reused until its half life")
	assert.Equal(t, witKey, fetchWIT(), "reused until its half life")

	// The taint reaches the agent within the sync latency.
	_, err = s.Admin.TaintAuthority(ctx, registry.AuthorityJWT, jwtKey)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return fetchJWT() == newJWT }, nodetest.Timeout, 10*time.Millisecond,
		"the JWT-SVID of the tainted key is replaced")
	assert.Equal(t, witKey, streamed(), "a JWT key's taint leaves the WIT-SVIDs alone")

	_, err = s.Admin.TaintAuthority(ctx, registry.AuthorityWIT, witKey)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return streamed() == newWIT }, nodetest.Timeout, 10*time.Millisecond,
		"the open stream receives a WIT-SVID of the active key")
	assert.Equal(t, newWIT, fetchWIT())
	assert.Equal(t, newJWT, fetchJWT())
}

// Property: with two servers on one database, a taint made through one
// server of the other's old JWT key and WIT key reaches the agents of
// both servers.
func TestKeyTaintAcrossServers(t *testing.T) {
	dsn := pgtest.New(t)
	cfgA, cfgB := serverConfig(t, dsn, nil), serverConfig(t, dsn, nil)
	cfgA.WITSVIDs, cfgB.WITSVIDs = true, true
	a, b := start(t, cfgA), start(t, cfgB)
	watchA, watchB := watchTaints(t, a), watchTaints(t, b)
	jwtB, witB := rotate(t, b, registry.AuthorityJWT), rotate(t, b, registry.AuthorityWIT)
	require.Eventually(t, func() bool {
		j, okJ := authorityOf(t, a.Admin, registry.AuthorityJWT, jwtB)
		w, okW := authorityOf(t, a.Admin, registry.AuthorityWIT, witB)
		return okJ && okW && j.State == registry.AuthorityOld && w.State == registry.AuthorityOld
	}, wait, 5*time.Millisecond, "A lists B's old keys")

	for _, k := range []struct {
		kind registry.AuthorityKind
		id   string
	}{{registry.AuthorityJWT, jwtB}, {registry.AuthorityWIT, witB}} {
		tainted, err := a.Admin.TaintAuthority(t.Context(), k.kind, k.id)
		require.NoError(t, err)
		assert.Equal(t, b.ID(), tainted.ServerID)
	}
	require.Eventually(t, func() bool { return watchA.namesKeys(jwtB, witB) && watchB.namesKeys(jwtB, witB) }, wait, 5*time.Millisecond,
		"both servers name B's tainted keys to their agents")
	require.Eventually(t, func() bool {
		return mustInfo(t, b, registry.AuthorityJWT, jwtB).Tainted && mustInfo(t, b, registry.AuthorityWIT, witB).Tainted
	}, wait, 5*time.Millisecond, "B applies the taints to its CA")
	assert.True(t, watchB.namesKeys(jwtB, witB), "and still names them")
}

// Property: a server of a later version, sharing the database, that
// publishes an authority of a kind this version does not know breaks
// neither the bundle refresh nor the authority list of this version's
// servers: the unknown authority is left out, the rest is served.
func TestUnknownAuthorityKindOfALaterServer(t *testing.T) {
	dsn := pgtest.New(t)
	var logs logtest.Buffer
	a := start(t, serverConfig(t, dsn, &logs))
	doc, err := a.Bundle().Marshal()
	require.NoError(t, err)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	exp := time.Now().Add(time.Hour)
	_, err = db.Exec(`INSERT INTO registry_server_bundles (server_id, document, expires_at, updated_at, authorities) VALUES ($1, $2, $3, $4, $5)`,
		"later", doc, exp.UnixMicro(), time.Now().UnixMicro(),
		`[{"kind":"ssh","id":"s1","state":"active","not_after_us":`+strconv.FormatInt(exp.UnixMicro(), 10)+`},`+
			`{"kind":"jwt","id":"k-later","state":"old","tainted":true,"not_after_us":`+strconv.FormatInt(exp.UnixMicro(), 10)+`}]`)
	require.NoError(t, err)

	list, err := a.Admin.Authorities(t.Context())
	require.NoError(t, err, "the unknown kind fails no list")
	assert.True(t, slices.ContainsFunc(list, func(x admin.Authority) bool { return x.ServerID == "later" && x.ID == "k-later" }),
		"the later server's JWT key is listed")
	assert.False(t, slices.ContainsFunc(list, func(x admin.Authority) bool { return x.ID == "s1" }))
	assert.NotZero(t, a.Stats().SkippedAuthorities, "counted")

	// The refresh goes on: a taint made now reaches the agents, with the
	// later server's tainted JWT key.
	w := watchTaints(t, a)
	old := rotate(t, a, registry.AuthorityJWT)
	_, err = a.Admin.TaintAuthority(t.Context(), registry.AuthorityJWT, old)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Contains(w.jwt, old) && slices.Contains(w.jwt, "k-later")
	}, wait, 5*time.Millisecond)
	assert.NotContains(t, logs.String(), "refreshing the bundle after an authority change failed")
	assert.NotContains(t, logs.String(), "decoding stored server bundle")
}
