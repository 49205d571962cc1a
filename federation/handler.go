package federation

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// HandlerOption configures NewHandler.
type HandlerOption interface {
	apply(*handlerConfig) error
}

type handlerConfig struct {
	log *slog.Logger
}

type handlerOption func(*handlerConfig) error

func (o handlerOption) apply(c *handlerConfig) error { return o(c) }

// WithLogger sets the logger to which the handler reports the errors it
// answers with 500 Internal Server Error (the client only gets a generic
// message). The default, and a nil log, discard them.
func WithLogger(log logger.Logger) HandlerOption {
	return handlerOption(func(c *handlerConfig) error {
		if log == nil {
			log = logger.Null
		}
		c.log = logger.ToSlog(log)
		return nil
	})
}

// NewHandler returns an HTTP handler that provides the trust domain bundle for
// the given trust domain. The bundle is encoded according to the format
// outlined in the SPIFFE Trust Domain and Bundle specification. The bundle
// source is used to obtain the bundle on each request, so the handler always
// serves the most up-to-date bundle the source has (Fed rule 10). Source
// implementations should consider a caching strategy if retrieval is
// expensive.
//
// The handler answers:
//   - GET: 200 with the bundle document, Content-Type application/json;
//   - any other method: 405 Method Not Allowed, with "Allow: GET";
//   - 500 Internal Server Error with a generic message when the source fails,
//     returns no bundle or a bundle of another trust domain (Fed rule 23), or
//     the bundle cannot be marshalled; the details go to the logger only.
//
// It never asks for client authentication (Fed rule 9): the bundle is public.
// Serve it over HTTPS, as a bundle endpoint requires: with a certificate from a
// Web PKI CA (https_web) or with an X509-SVID, for instance through
// tlsconfig.TLSServerConfig (https_spiffe).
//
// NewHandler returns an error, starting with "federation: ", when trustDomain
// is zero, source is nil or an option is invalid.
func NewHandler(trustDomain spiffeid.TrustDomain, source spiffebundle.Source, opts ...HandlerOption) (http.Handler, error) {
	if trustDomain.IsZero() {
		return nil, wrapFederationErr(errors.New("trust domain is required"))
	}
	if source == nil {
		return nil, wrapFederationErr(errors.New("bundle source is required"))
	}
	conf := &handlerConfig{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if opt == nil {
			return nil, wrapFederationErr(errors.New("handler configuration is invalid: option is nil"))
		}
		if err := opt.apply(conf); err != nil {
			return nil, wrapFederationErr(fmt.Errorf("handler configuration is invalid: %w", err))
		}
	}
	return &handler{trustDomain: trustDomain, source: source, log: conf.log}, nil
}

type handler struct {
	trustDomain spiffeid.TrustDomain
	source      spiffebundle.Source
	log         *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method is not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := h.document()
	if err != nil {
		h.log.Error("unable to serve bundle", "trust_domain", h.trustDomain.String(), "err", err)
		http.Error(w, fmt.Sprintf("unable to serve bundle for %q", h.trustDomain.String()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func (h *handler) document() ([]byte, error) {
	bundle, err := h.source.GetBundleForTrustDomain(h.trustDomain)
	switch {
	case err != nil:
		return nil, fmt.Errorf("unable to get bundle: %w", err)
	case bundle == nil:
		return nil, errors.New("source returned no bundle")
	case bundle.TrustDomain() != h.trustDomain:
		return nil, fmt.Errorf("source returned a bundle for trust domain %q", bundle.TrustDomain().String())
	}
	data, err := bundle.Marshal()
	if err != nil {
		return nil, fmt.Errorf("unable to marshal bundle: %w", err)
	}
	return data, nil
}
