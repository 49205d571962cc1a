package jwtsvid

import (
	"context"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Params are JWT-SVID parameters used when fetching a new JWT-SVID.
type Params struct {
	// Audience is the audience the JWT-SVID is for. It is required.
	Audience string
	// ExtraAudiences are further audiences. One audience per token is
	// recommended (JWT rule 7): a recipient can replay a token to any other
	// audience it names.
	ExtraAudiences []string
	// Subject is the SPIFFE ID the JWT-SVID is requested for. The zero ID
	// lets the source pick its default identity.
	Subject spiffeid.ID
}

// Source represents a source of JWT-SVIDs.
type Source interface {
	// FetchJWTSVID fetches a JWT-SVID from the source with the given
	// parameters.
	FetchJWTSVID(ctx context.Context, params Params) (*SVID, error)
}
