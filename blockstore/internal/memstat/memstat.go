// Package memstat reads a process's memory figures, for the store's
// memory measurements (rssprobe and the long test).
package memstat

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Report returns VmHWM, VmRSS, RssAnon and RssFile from /proc/self/status
// (Linux; elsewhere a note saying they are missing) and the Go heap in use.
func Report() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("%s  Go heap in use %.1f MB, Go sys %.1f MB", procStatus(), float64(ms.HeapInuse)/1e6, float64(ms.Sys)/1e6)
}

func procStatus() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "(no /proc/self/status)"
	}
	defer f.Close()
	var fields []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmHWM", "VmRSS", "RssAnon", "RssFile":
			if ok {
				fields = append(fields, k+" "+strings.Join(strings.Fields(v), " "))
			}
		}
	}
	return strings.Join(fields, ", ")
}
