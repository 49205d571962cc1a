package memstore_test

import (
	"testing"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/registrytest"
)

func TestContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		return memstore.New(memstore.Config{})
	})
}

func TestBatchContract(t *testing.T) {
	registrytest.RunBatch(t, func(t *testing.T) registrytest.BatchStore { return memstore.New(memstore.Config{}) })
}

func TestNotifyContract(t *testing.T) {
	registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore { return memstore.New(memstore.Config{}) })
}
