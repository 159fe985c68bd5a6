package spectest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckLimitsReportsEachDisagreement feeds a small spec and mapping
// with one of each fault: the check must name every one and nothing else.
func TestCheckLimitsReportsEachDisagreement(t *testing.T) {
	spec := "# Spec\n\n## 3. Other\n\n| name | value |\n|---|---|\n| `Z` | 1 |\n\n" +
		"## 11. Limits\n\n| name | value | note |\n|---|---|---|\n" +
		"| `Same` | 10 bytes | |\n" +
		"| `Slower` | 2 h | |\n" +
		"| `Unmapped` | 5 | |\n" +
		"| shard list | 1, 2 | |\n" +
		"| `Same` | 10 | |\n" +
		"| `Seconds` | 3600 | a duration with no unit |\n" +
		"\n## 12. Versioning\n\n| name | value |\n|---|---|\n| `Y` | 2 |\n"
	consts := map[string]any{
		"Same":       10,
		"Slower":     time.Hour,
		"shard list": [2]int{1, 3},
		"Seconds":    time.Hour,
		"NotInSpec":  7,
	}
	rows, err := limitsTable(strings.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rows); got != 6 {
		t.Fatalf("read %d rows of the limits table, want 6: %+v", got, rows)
	}
	problems := checkLimits(rows, consts)
	want := []string{
		`"Slower": the table says 2 h, the constant is 1h0m0s`,
		`"Unmapped" (5) has no constant`,
		`"shard list": the table says 1, 2, the constant is [1 3]`,
		`"Same" appears twice`,
		`"Seconds": the table says 3600, the constant is 1h0m0s`,
		`"NotInSpec" is in limits but not in the table`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("no problem reported like %q; got:\n%s", w, strings.Join(problems, "\n"))
		}
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), strings.Join(problems, "\n"))
	}
}

func TestLimitsTableRefusesMalformedTables(t *testing.T) {
	for name, spec := range map[string]string{
		"no section":      "## 10. Key file\n\n| name | value |\n|---|---|\n| `A` | 1 |\n",
		"no table":        "## 11. Limits\n\nNone yet.\n\n## 12. Versioning\n",
		"no value column": "## 11. Limits\n\n| name | size |\n|---|---|\n| `A` | 1 |\n",
		"ragged row":      "## 11. Limits\n\n| name | value |\n|---|---|\n| `A` | 1 | 2 |\n",
	} {
		if _, err := limitsTable(strings.NewReader(spec)); !errors.Is(err, errNoTable) && !errors.Is(err, errBadTable) {
			t.Errorf("%s: err = %v, want errNoTable or errBadTable", name, err)
		}
	}
}

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []quantity
	}{
		{"262144 bytes", []quantity{{262144, size}}},
		{"2592000 s (30 days)", []quantity{{2592000 * int64(time.Second), duration}}},
		{"263168 bytes (`MaxBlockSize` + 1024)", []quantity{{263168, size}}},
		{"32 MiB (RFC 5322 bytes)", []quantity{{32 << 20, size}}},
		{"1 h", []quantity{{int64(time.Hour), duration}}},
		{"170 (so `k + m <= 256`)", []quantity{{170, count}}},
		{"4096, 65536, 261120", []quantity{{4096, count}, {65536, count}, {261120, count}}},
	} {
		got, err := parseValue(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseValue(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "`MaxBlockSize` + 1024", "3 parsecs", "1.5 s", "99999999999 GiB", "1,, 2"} {
		if got, err := parseValue(in); !errors.Is(err, errBadValue) {
			t.Errorf("parseValue(%q) = %v, %v; want errBadValue", in, got, err)
		}
	}
}

func TestSameValueKeepsDimensions(t *testing.T) {
	for _, c := range []struct {
		value string
		c     any
		ok    bool
	}{
		{"1 h", time.Hour, true},
		{"60 min", time.Hour, true},
		{"3600", time.Hour, false},  // a duration needs a time unit
		{"1 h", 3600, false},        // an integer is no duration
		{"32 MiB", 32 << 20, true},  // sizes are integers
		{"20", uint8(20), true},     // of any integer type
		{"1, 2", []int{1, 2}, true}, // lists
		{"1, 2", []int{1, 2, 3}, false},
		{"1", "1", false}, // strings are no limits
	} {
		if err := sameValue(c.value, c.c); (err == nil) != c.ok {
			t.Errorf("sameValue(%q, %#v) = %v, want ok %v", c.value, c.c, err, c.ok)
		}
	}
}
