package blockstore

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBadger(t *testing.T, cfg Config) Store {
	t.Helper()
	s, err := OpenBadger(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestBadgerStore(t *testing.T) { runStoreSuite(t, openBadger) }
