package blockstore

import "testing"

func openMemory(t *testing.T, cfg Config) Store {
	s := NewMemory(cfg)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMemoryStore(t *testing.T) { runStoreSuite(t, openMemory) }
