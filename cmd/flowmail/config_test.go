package main

import (
	"os"
	"sort"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestExampleConfigCoversEveryNodeFlag keeps contrib/config.example.toml
// and the node's flags in step: every key is a flag, every flag has a key.
func TestExampleConfigCoversEveryNodeFlag(t *testing.T) {
	b, err := os.ReadFile("../../contrib/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := toml.Unmarshal(b, &file); err != nil {
		t.Fatalf("example config does not parse: %v", err)
	}
	flags := map[string]bool{}
	for _, f := range nodeFlags() {
		if name := f.Names()[0]; name != "config" {
			flags[name] = true
		}
	}
	for _, f := range newApp(nil, nil, nil).Flags {
		if name := f.Names()[0]; name == "log-level" || name == "log-format" {
			flags[name] = true
		}
	}
	var missing, unknown []string
	for name := range flags {
		if _, ok := file[name]; !ok {
			missing = append(missing, name)
		}
	}
	for key := range file {
		if !flags[key] {
			unknown = append(unknown, key)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 || len(unknown) > 0 {
		t.Fatalf("example config: missing flags %v, unknown keys %v", missing, unknown)
	}
	// And the node's own check of config keys accepts it.
	if err := checkConfigKeys("../../contrib/config.example.toml", nodeFlags(), newApp(nil, nil, nil).Flags); err != nil {
		t.Fatal(err)
	}
}
