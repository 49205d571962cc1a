package apicompat

import (
	"errors"
	"fmt"
	"go/types"

	"golang.org/x/tools/go/packages"
)

// Load type-checks the packages named by patterns, resolved from the module
// containing dir, and returns them keyed by import path. A package that
// cannot be found or does not type-check is returned in the error (joined
// per package) and left out of the map; the others are still returned.
func Load(dir string, patterns ...string) (map[string]*types.Package, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedTypes,
		Dir:  dir,
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, fmt.Errorf("apicompat: load: %w", err)
	}
	out := make(map[string]*types.Package, len(pkgs))
	var errs []error
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			for _, e := range p.Errors {
				errs = append(errs, fmt.Errorf("apicompat: %s: %s", p.PkgPath, e.Msg))
			}
			continue
		}
		if p.Types == nil {
			errs = append(errs, fmt.Errorf("apicompat: %s: no type information", p.PkgPath))
			continue
		}
		out[p.PkgPath] = p.Types
	}
	return out, errors.Join(errs...)
}
