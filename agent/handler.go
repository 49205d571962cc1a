package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// handler is the agent's Workload API handler: its issuer, except that
// until the agent has received its entries from a server for the first
// time, a caller the issuer finds no identity for is told to retry
// (endpoint.ErrUnavailable), not that it has none. An agent started again
// holds no entries until it syncs: its callers' entries have not arrived
// yet, and a workload told it has no identity may drop the one it holds or
// give up.
type handler struct {
	*issuer.Issuer
	synced <-chan struct{}
}

var _ endpoint.WITHandler = handler{}

// Subscribe implements endpoint.Handler.
func (h handler) Subscribe(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	sub, err := h.Issuer.Subscribe(ctx, caller)
	return sub, h.unsynced(err)
}

// SubscribeWIT implements endpoint.WITHandler.
func (h handler) SubscribeWIT(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	sub, err := h.Issuer.SubscribeWIT(ctx, caller)
	return sub, h.unsynced(err)
}

// FetchJWTSVIDs implements endpoint.Handler.
func (h handler) FetchJWTSVIDs(ctx context.Context, caller endpoint.Caller, params endpoint.JWTSVIDParams) ([]endpoint.JWTSVID, error) {
	svids, err := h.Issuer.FetchJWTSVIDs(ctx, caller, params)
	return svids, h.unsynced(err)
}

// unsynced turns a "no identity" into "unavailable" while the agent has
// not synced.
func (h handler) unsynced(err error) error {
	if !errors.Is(err, endpoint.ErrNoIdentity) {
		return err
	}
	select {
	case <-h.synced:
		return err
	default:
		return fmt.Errorf("agent: %w: no entries from a server yet; retry", endpoint.ErrUnavailable)
	}
}
