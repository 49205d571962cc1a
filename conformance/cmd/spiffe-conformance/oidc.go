package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// oidcOpts are the flags of the oidc mode.
type oidcOpts struct {
	cfg   kit.OIDCConfig
	roots string
}

func oidcFlags(fs *flag.FlagSet) *oidcOpts {
	o := &oidcOpts{}
	fs.StringVar(&o.cfg.URL, "url", "", "the issuer URL, or its discovery document's URL (required)")
	fs.StringVar(&o.roots, "roots", "", "PEM roots the server certificates must chain to (default: the system's)")
	fs.DurationVar(&o.cfg.Timeout, "timeout", kit.DefaultTimeout, "bound on every request")
	fs.DurationVar(&o.cfg.RotationWait, "rotation-wait", 0, "fetch the JWKS again for this long, until the keys change (0: do not wait)")
	fs.DurationVar(&o.cfg.PollInterval, "poll-interval", kit.DefaultPollInterval, "the interval of those fetches")
	return o
}

// check runs the oidc mode.
func (o *oidcOpts) check(ctx context.Context) (*kit.Report, error) {
	if o.cfg.URL == "" {
		return nil, fmt.Errorf("-url is required")
	}
	if o.roots != "" {
		var err error
		if o.cfg.Roots, err = loadRoots(o.roots); err != nil {
			return nil, err
		}
	}
	return kit.CheckOIDC(ctx, o.cfg)
}
