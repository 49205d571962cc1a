package psatserver_test

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/attest/k8spsat/psatserver"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A server admits the nodes of the clusters it is given, and the set can
// change while it runs. Building a cluster's client makes no request; here
// an agent naming a cluster the server does not know is refused before any
// API server is asked.
func ExampleServer() {
	srv, err := psatserver.New(psatserver.Config{Clusters: map[string]psatserver.ClusterConfig{
		// In a program: rc, err := psatserver.LoadRESTConfig(kubeconfigFile)
		"prod-eu": {REST: &rest.Config{Host: "https://10.0.0.1:6443"}, ServiceAccountAllowList: []string{"spiffekit:spiffekit-agent"}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	if err := srv.SetCluster("prod-us", psatserver.ClusterConfig{
		REST: &rest.Config{Host: "https://10.1.0.1:6443"}, ServiceAccountAllowList: []string{"spiffekit:spiffekit-agent"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	srv.RemoveCluster("prod-eu")
	fmt.Println(srv.Type(), srv.Clusters())

	payload := k8spsat.Payload{Cluster: "prod-eu", Token: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}.Marshal()
	_, err = srv.Attest(context.Background(), spiffeid.RequireTrustDomainFromString("example.org"), payload, nil)
	fmt.Println(errors.Is(err, attest.ErrNodeRejected), err)
	// Output:
	// k8s_psat [prod-us]
	// true psatserver: cluster "prod-eu" is not configured
}
