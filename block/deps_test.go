package block

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoOtherFlowmailPackage holds the line in doc.go: the only
// flowmail packages block depends on are its SIMD kernel and the
// compression function under it.
func TestImportsNoOtherFlowmailPackage(t *testing.T) {
	const module = "github.com/flowmail/flowmail/"
	allowed := map[string]bool{
		module + "block":                  true,
		module + "block/internal/sha512x": true,
		module + "internal/sha512block":   true,
	}
	for _, tags := range []string{"", "purego"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", module+"block").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, module) && !allowed[dep] {
				t.Errorf("block depends on %s (tags %q)", dep, tags)
			}
		}
	}
}
