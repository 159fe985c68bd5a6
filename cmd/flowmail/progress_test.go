package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
)

func TestFetchProgressReportsBigMailsOnly(t *testing.T) {
	var out bytes.Buffer
	p := newFetchProgress(&out)
	feed := func(mail int, index byte, needed, size int) {
		for done := 0; done <= needed; done++ {
			p.Report(delivery.FetchProgress{Mail: mail, Mails: 2, Index: block.ID{index},
				ShardProgress: delivery.ShardProgress{Done: done, Needed: needed, Bytes: int64(done * size), TotalBytes: int64(needed * size)}})
		}
	}
	feed(0, 1, 1, 4096)
	if out.Len() != 0 {
		t.Fatalf("a 4 KiB mail reported progress: %q", out.String())
	}
	feed(1, 2, 5, 65536)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "mail 2 of 2: 5 shards, 320 KiB in ") {
		t.Fatalf("progress printed %q", out.String())
	}
}
