package workloadapi

import (
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"google.golang.org/grpc"
)

// ClientOption is an option used when creating a new Client. Options are
// applied in order; for single-valued settings the last one wins.
type ClientOption interface {
	configureClient(*clientConfig)
}

// WithAddr provides an address for the Workload API. The value of the
// SPIFFE_ENDPOINT_SOCKET environment variable will be used if the option is
// unused. See TargetFromAddress for the accepted forms.
func WithAddr(addr string) ClientOption {
	return clientOption(func(c *clientConfig) { c.address = addr })
}

// WithDialOptions provides extra GRPC dialing options when dialing the
// Workload API. They are applied after the client's own options (insecure
// transport credentials, WE rule 4), so they can override them.
func WithDialOptions(options ...grpc.DialOption) ClientOption {
	return clientOption(func(c *clientConfig) { c.dialOptions = append(c.dialOptions, options...) })
}

// WithLogger provides a logger to the Client. The default discards
// everything. To log to a *slog.Logger, pass logger.Slog(l): the client then
// logs to l directly, with structured attributes.
func WithLogger(logger logger.Logger) ClientOption {
	return clientOption(func(c *clientConfig) { c.log = logger })
}

// WithBackoffStrategy provides a custom backoff strategy that replaces the
// default backoff strategy.
//
// The default differs from go-spiffe's linear backoff: the first retry comes
// after 50-100 ms, each further one after a delay twice as long (with jitter:
// between half and all of the doubled base), up to a base of 30 s, and the
// backoff is reset after every message that was applied.
func WithBackoffStrategy(backoffStrategy BackoffStrategy) ClientOption {
	return clientOption(func(c *clientConfig) { c.backoffStrategy = backoffStrategy })
}

type clientConfig struct {
	address         string
	namedPipeName   string // WithNamedPipeName, on Windows
	dialOptions     []grpc.DialOption
	log             logger.Logger
	backoffStrategy BackoffStrategy
}

type clientOption func(*clientConfig)

func (f clientOption) configureClient(c *clientConfig) { f(c) }

// SourceOption are options that are shared among all option types.
type SourceOption interface {
	X509SourceOption
	JWTSourceOption
	BundleSourceOption
	WITSourceOption
}

// X509SourceOption is an option for the X509Source. A SourceOption is also an
// X509SourceOption.
type X509SourceOption interface {
	configureX509Source(*x509SourceConfig)
}

// JWTSourceOption is an option for the JWTSource. A SourceOption is also a
// JWTSourceOption.
type JWTSourceOption interface {
	configureJWTSource(*jwtSourceConfig)
}

// BundleSourceOption is an option for the BundleSource. A SourceOption is
// also a BundleSourceOption.
type BundleSourceOption interface {
	configureBundleSource(*bundleSourceConfig)
}

// WITSourceOption is an option for the WITSource. A SourceOption is also a
// WITSourceOption.
//
// Experimental: subject to change.
type WITSourceOption interface {
	configureWITSource(*witSourceConfig)
}

// WithClient provides a Client for the source to use. If unset, a new Client
// will be created. A source never closes a Client passed this way.
func WithClient(client *Client) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.client = client })
}

// WithClientOptions controls the options used to create a new Client for the
// source. This option will be ignored if WithClient is used.
func WithClientOptions(options ...ClientOption) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.clientOptions = options })
}

// WithoutWaitingForFirstUpdate makes a source constructor return as soon as
// its watch has started, instead of blocking until the first update arrives
// (go-spiffe always blocks). Until then the source's getters return an error
// that matches ErrNoUpdate and includes the watch's last error, such as
// "workloadapi: no X509-SVID received yet: ...". Use WaitUntilUpdated or
// Updated to learn when the first update has arrived.
func WithoutWaitingForFirstUpdate() SourceOption {
	return sourceOption(func(c *sourceConfig) { c.noWait = true })
}

// WithDefaultX509SVIDPicker provides a function that is used to determine the
// default X509-SVID when more than one is provided by the Workload API. By
// default, the first X509-SVID in the list returned by the Workload API is
// used (WAPI rule 9). The picker runs once per update, not per GetX509SVID
// call; if it returns nil, GetX509SVID fails until the next update.
func WithDefaultX509SVIDPicker(picker func([]*x509svid.SVID) *x509svid.SVID) X509SourceOption {
	return x509SourceOption(func(c *x509SourceConfig) { c.picker = picker })
}

// WithDefaultJWTSVIDPicker provides a function that is used to determine the
// default JWT-SVID when more than one is provided by the Workload API. By
// default, the first JWT-SVID in the list returned by the Workload API is
// used.
func WithDefaultJWTSVIDPicker(picker func([]*jwtsvid.SVID) *jwtsvid.SVID) JWTSourceOption {
	return jwtSourceOption(func(c *jwtSourceConfig) { c.picker = picker })
}

// WithoutJWTSVIDCache makes JWTSource.FetchJWTSVID and FetchJWTSVIDs ask the
// Workload API on every call, as go-spiffe does, instead of reusing tokens
// that are still far from expiry.
func WithoutJWTSVIDCache() JWTSourceOption {
	return jwtSourceOption(func(c *jwtSourceConfig) { c.noCache = true })
}

// sourceConfig holds the settings every source has.
type sourceConfig struct {
	client        *Client
	clientOptions []ClientOption
	noWait        bool
}

type x509SourceConfig struct {
	sourceConfig
	picker func([]*x509svid.SVID) *x509svid.SVID
}

type jwtSourceConfig struct {
	sourceConfig
	picker  func([]*jwtsvid.SVID) *jwtsvid.SVID
	noCache bool
}

type bundleSourceConfig struct{ sourceConfig }

type witSourceConfig struct{ sourceConfig }

type sourceOption func(*sourceConfig)

func (f sourceOption) configureX509Source(c *x509SourceConfig)     { f(&c.sourceConfig) }
func (f sourceOption) configureJWTSource(c *jwtSourceConfig)       { f(&c.sourceConfig) }
func (f sourceOption) configureBundleSource(c *bundleSourceConfig) { f(&c.sourceConfig) }
func (f sourceOption) configureWITSource(c *witSourceConfig)       { f(&c.sourceConfig) }

type x509SourceOption func(*x509SourceConfig)

func (f x509SourceOption) configureX509Source(c *x509SourceConfig) { f(c) }

type jwtSourceOption func(*jwtSourceConfig)

func (f jwtSourceOption) configureJWTSource(c *jwtSourceConfig) { f(c) }
