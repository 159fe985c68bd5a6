// Package archtest holds rules about the whole repository: the import
// arrows each package's doc.go states, which run cmd -> testnet -> node
// -> {kademlia, delivery} -> {transport, blockstore, mail, mailbox, pow,
// record} -> identity -> block, never back (blockstore, which keeps
// records, imports record; rendezvous beside them, imported by node
// only); and the list of places that start goroutines, each with its
// owner (goroutines_test.go).
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/flowmail/flowmail/"

// forbidden lists, for each package, the flowmail packages it must not
// import (directly or through others).
var forbidden = map[string][]string{
	"block":        {"grant", "identity", "record", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"identity":     {"grant", "record", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"record":       {"grant", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"pow":          {"grant", "identity", "blockstore", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"blockstore":   {"grant", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"transport":    {"grant", "blockstore", "pow", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"kademlia":     {"grant", "mail", "delivery", "mailbox", "pow", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"mail":         {"grant", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "transport", "kademlia", "blockstore", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"mailbox":      {"grant", "delivery", "internal/mailforge", "internal/mailtest", "pow", "identity", "transport", "kademlia", "blockstore", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"grant":        {"delivery", "mailbox", "internal/mailforge", "internal/mailtest", "transport", "kademlia", "blockstore", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"delivery":     {"internal/mailforge", "internal/mailtest", "transport", "kademlia", "blockstore", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"maillist":     {"internal/mailforge", "internal/mailtest", "transport", "kademlia", "blockstore", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"rendezvous":   {"grant", "identity", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "cmd/flowmail"},
	"onion":        {"grant", "transport", "kademlia", "blockstore", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "pow", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"account":      {"block", "identity", "record", "bridge", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "onion", "internal/mailforge", "internal/mailtest", "node", "server", "testnet", "rendezvous", "cmd/flowmail"},
	"server":       {"internal/mailforge", "internal/mailtest", "testnet", "cmd/flowmail"},
	"naming":       {"transport", "kademlia", "blockstore", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "pow", "onion", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"node":         {"internal/mailforge", "internal/mailtest", "testnet", "cmd/flowmail"},
	"bridge":       {"internal/mailforge", "internal/mailtest", "testnet", "cmd/flowmail"},
	"gateway":      {"transport", "kademlia", "blockstore", "node", "server", "bridge", "onion", "internal/mailforge", "internal/mailtest", "testnet", "rendezvous", "cmd/flowmail"},
	"testnet":      {"internal/mailforge", "internal/mailtest", "cmd/flowmail"},
	"cmd/flowmail": {"internal/mailforge", "internal/mailtest"},
	// kadsim simulates DHTs for tests; see testOnly.
	"kademlia/kadsim": {"mail", "delivery", "mailbox", "pow", "node", "testnet", "rendezvous", "cmd/flowmail"},
	// Only its tests import others, so nothing can come to depend on them.
	"internal/spectest": {"block", "identity", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	// Starts nsd for tests of naming and cmd; imports nothing of ours.
	"internal/nsdtest": {"block", "identity", "record", "naming", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	// Records from the vectors, for the tests of the store, the DHT and
	// above; see testOnly.
	"internal/recordtest": {"blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	// Imported by tests of every layer.
	"internal/syncbuf":  {"block", "identity", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
	"internal/testseed": {"block", "identity", "blockstore", "pow", "transport", "kademlia", "mail", "delivery", "mailbox", "internal/mailforge", "internal/mailtest", "node", "testnet", "rendezvous", "cmd/flowmail"},
}

// testOnly lists packages only tests may import: no package's own code
// depends on them.
var testOnly = []string{"kademlia/kadsim", "internal/nsdtest", "internal/recordtest", "internal/syncbuf"}

type pkg struct {
	ImportPath string
	Deps       []string
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		for _, d := range p.Deps {
			for _, only := range testOnly {
				if d == module+only {
					t.Errorf("%s imports %s, which only tests may import", name, only)
				}
			}
		}
		rules, ok := forbidden[name]
		if !ok {
			continue
		}
		seen++
		for _, d := range p.Deps {
			for _, f := range rules {
				if d == module+f {
					t.Errorf("%s imports %s (directly or indirectly), against the layering in its doc.go", name, f)
				}
			}
		}
	}
	if seen < 4 {
		t.Fatalf("only %d ruled packages found: go list output changed?", seen)
	}
}
