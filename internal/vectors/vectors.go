// Package vectors reads and writes the JSON test-vector files under
// testdata/vectors (docs/PROTOCOL.md, "Test vectors"), so every package
// walks its vectors the same way.
package vectors

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Update is set by `go test -update`: tests then rewrite their vector
// files from the code instead of checking the code against them.
var Update = flag.Bool("update", false, "rewrite testdata/vectors from the current code")

// Vector is one case: an input fed to a named function and the outcome a
// correct implementation must reach.
type Vector struct {
	Name     string            `json:"name"`
	Function string            `json:"function"`
	Input    string            `json:"input"`            // hex, or text for text parsers
	Params   map[string]string `json:"params,omitempty"` // extra inputs (target, bits, ...)
	Expect   string            `json:"expect"`           // "ok" or "error"
	Error    string            `json:"error,omitempty"`  // the broken rule, by name
	Output   map[string]string `json:"output,omitempty"` // decoded fields when ok
	Note     string            `json:"note,omitempty"`   // which MUST the vector exercises
}

// File is the content of one vector file.
type File struct {
	Description string   `json:"description"`
	Vectors     []Vector `json:"vectors"`
}

// Path returns the absolute path of a vector file by name.
func Path(name string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "testdata", "vectors", name)
}

// Check walks name's vectors through check; with -update it first
// regenerates the file from gen. check returns the outcome of one vector:
// nil error and the output fields, or the error name.
func Check(t *testing.T, name string, gen func() File, check func(v Vector) (out map[string]string, errName string)) {
	t.Helper()
	path := Path(name)
	if *Update {
		// gen states each vector's expected outcome; the code fills in the
		// decoded fields of ok vectors and must agree on every outcome.
		f := gen()
		for i := range f.Vectors {
			v := &f.Vectors[i]
			out, errName := check(*v)
			if errName != v.Error {
				t.Fatalf("%s: generator expects error %q, code gives %q", v.Name, v.Error, errName)
			}
			if v.Error != "" {
				v.Expect, v.Output = "error", nil
			} else {
				v.Expect, v.Output = "ok", out
			}
		}
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading vectors (regenerate with -update): %v", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s holds no vectors", path)
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			out, errName := check(v)
			switch v.Expect {
			case "ok":
				if errName != "" {
					t.Fatalf("want ok, got error %q", errName)
				}
				for k, want := range v.Output {
					if got := out[k]; got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if len(out) != len(v.Output) {
					t.Errorf("decoded %d fields, vector states %d", len(out), len(v.Output))
				}
			case "error":
				if errName != v.Error {
					t.Fatalf("want error %q, got %q", v.Error, errName)
				}
			default:
				t.Fatalf("vector expects %q: want ok or error", v.Expect)
			}
		})
	}
}

// MustHex is fmt.Sprintf("%x") for readability at call sites.
func MustHex(b []byte) string { return fmt.Sprintf("%x", b) }

// RuleName names the rule err breaks, as vector files do: the text of the
// first sentinel err wraps, after its "package: " prefix. It is "" for a
// nil error and "unexpected: ..." for an error wrapping none of them.
func RuleName(err error, sentinels ...error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			msg := s.Error()
			if _, rest, ok := strings.Cut(msg, ": "); ok {
				return rest
			}
			return msg
		}
	}
	return "unexpected: " + err.Error()
}

// Pattern returns n recognisable, non-constant bytes starting from seed,
// for inputs of generated vectors.
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}
