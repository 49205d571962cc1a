package k8spsat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spiffekit/spiffekit/attest/k8spsat"
)

// The agent side reads the token the kubelet projects into its pod each
// time it attests, and sends it with its cluster's name.
func ExampleClient() {
	dir, _ := os.MkdirTemp("", "k8spsat")
	defer os.RemoveAll(dir)
	tokenPath := filepath.Join(dir, "spiffekit-agent") // as the kubelet writes it
	os.WriteFile(tokenPath, []byte("eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n"), 0o600)

	client, err := k8spsat.NewClient(k8spsat.ClientConfig{Cluster: "prod-eu", TokenPath: tokenPath})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := client.Payload(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := k8spsat.ParsePayload(b) // as the server reads it
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.Type())
	fmt.Println(p) // never shows the token
	// Output:
	// k8s_psat
	// k8s_psat payload for cluster "prod-eu" with a token of 29 bytes
}
