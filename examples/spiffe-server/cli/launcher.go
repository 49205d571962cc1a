package cli

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/spiffekit/spiffekit/launch"
	issuing "github.com/spiffekit/spiffekit/server"
)

// launcherKey is where the configuration file holds the launcher API's
// settings.
const launcherKey = "launcher"

const launcherHelp = `the launcher API (on-demand identities for sandboxes: a launcher makes a short-lived entry and gets a one-time handle,
which the sandbox redeems at the token exchange endpoint, required): {"socket_path": "<unix socket>" (default ` + DefaultLauncherSocket + `),
"allowed_uids": [<uid>, ...] (default: root and the server's uid), "allowed_path_prefixes": ["/sandbox", ...] (default: any path outside /spiffekit),
"default_ttl": "15m", "max_ttl": "24h", "rate": 50, "burst": 100, "max_live_launches": 10000};
absent: off (see README.md)`

// launcherConfig is the launcher part of the configuration file.
type launcherConfig struct {
	// SocketPath: the launcher API's unix socket; empty means
	// DefaultLauncherSocket.
	SocketPath string `json:"socket_path"`
	// AllowedUIDs: the uids that may launch.
	AllowedUIDs []int `json:"allowed_uids"`
	// AllowedPathPrefixes: the SPIFFE ID paths launches may take.
	AllowedPathPrefixes []string `json:"allowed_path_prefixes"`
	// DefaultTTL, MaxTTL: a launch's lifetime when it names none, and
	// the longest (Go durations).
	DefaultTTL string `json:"default_ttl"`
	MaxTTL     string `json:"max_ttl"`
	// Rate, Burst: launches per second.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// MaxLiveLaunches: the most launches alive at once.
	MaxLiveLaunches int `json:"max_live_launches"`
}

// newLauncher returns the server's launcher settings of c.
func newLauncher(c *launcherConfig, exchange bool) (*issuing.Launcher, error) {
	if !exchange {
		return nil, usagef("%s needs the %s section: sandboxes redeem their handles at the token exchange endpoint", launcherKey, tokenExchangeKey)
	}
	socket := c.SocketPath
	if socket == "" {
		socket = DefaultLauncherSocket
	}
	l := &issuing.Launcher{SocketPath: socket, Service: launch.Config{
		AllowedUIDs: c.AllowedUIDs, PathPrefixes: c.AllowedPathPrefixes, Rate: rate.Limit(c.Rate), Burst: c.Burst,
		MaxLive: c.MaxLiveLaunches,
	}}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"default_ttl", c.DefaultTTL, &l.Service.DefaultTTL}, {"max_ttl", c.MaxTTL, &l.Service.MaxTTL}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return nil, usagef("%s.%s: %v", launcherKey, d.name, err)
		}
		*d.dst = v
	}
	if err := l.Service.CheckSettings(); err != nil {
		return nil, usagef("%s: %v", launcherKey, err)
	}
	return l, nil
}
