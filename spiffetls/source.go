package spiffetls

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// open returns the SVID and bundle sources of a mode and, when it created a
// Workload API source, that source, which the caller then owns.
func (s *sources) open(ctx context.Context) (x509svid.Source, x509bundle.Source, io.Closer, error) {
	switch s.kind {
	case sourceRaw:
		return s.svid, s.bundle, nil, nil
	case sourceGiven:
		if s.source == nil {
			return nil, nil, nil, errors.New("spiffetls: X.509 source is required")
		}
		return s.source, s.source, nil, nil
	}
	src, err := workloadapi.NewX509Source(ctx, s.options...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("spiffetls: cannot create X.509 source: %w", err)
	}
	return src, src, src, nil
}
