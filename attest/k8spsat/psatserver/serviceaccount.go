package psatserver

import (
	"fmt"
	"strings"
)

// serviceAccountPrefix begins the user name the API server gives a service
// account's token.
const serviceAccountPrefix = "system:serviceaccount:"

// parseServiceAccount splits the user name of a service account token,
// "system:serviceaccount:<namespace>:<name>", into its namespace and name.
// Both are Kubernetes names, which hold no ':'.
func parseServiceAccount(username string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(username, serviceAccountPrefix)
	if !ok {
		return "", "", fmt.Errorf("user %q is not a service account", username)
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", fmt.Errorf("malformed service account user name %q", username)
	}
	return namespace, name, nil
}
