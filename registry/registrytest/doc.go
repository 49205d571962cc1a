// Package registrytest checks that a [registry.Store] implementation keeps
// the registry's contract, in the manner of testing/fstest. Every backend
// runs the same suite from its tests:
//
//	func TestContract(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) registry.Store {
//			s, err := mystore.Open(t.Context(), mystore.Config{...})
//			require.NoError(t, err)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Each subtest asks newStore for a fresh, empty store. Backends that keep
// data across restarts also run [RunDurable].
//
// Backends that also keep the node-side records (agents, join tokens,
// federated and server bundles) run [RunNode] the same way, with a newStore
// that returns a [NodeStore]. Backends that several servers share call
// [TokenSingleUse] with one store per server, to check that a join token
// admits one node however many servers race to consume it.
package registrytest
