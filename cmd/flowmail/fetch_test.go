package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
)

// TestInterruptedFetchSaysWhatItDelivered: a fetch stopped by Ctrl-C
// (its context cancelled) with mail waiting never reports "no new mail"
// nor ends on a bare "context canceled": it says it was interrupted and
// how much was delivered and is left.
func TestInterruptedFetchSaysWhatItDelivered(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *delivery.FetchReport
		want string
	}{
		{"before the listing", nil, "nothing was delivered"},
		{"before any delivery", &delivery.FetchReport{Listed: 3}, "0 new mail(s) delivered, 3 more listed wait"},
		{"after one delivery", &delivery.FetchReport{Listed: 3, Delivered: []delivery.Delivered{{Index: block.ID{1}, Path: "/nonexistent"}}}, "1 new mail(s) delivered, 2 more listed wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			s := &streams{out: &out, err: &errb}
			err := finishFetch(s, nil, tc.rep, context.Canceled, true)
			if !errors.Is(err, errInterrupted) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an interruption saying %q", err, tc.want)
			}
			if strings.Contains(errb.String(), "no new mail") || err.Error() == context.Canceled.Error() {
				t.Fatalf("an interrupted fetch said %q / %v", errb.String(), err)
			}
		})
	}
	// Not interrupted, nothing there: that is "no new mail".
	var out, errb bytes.Buffer
	if err := finishFetch(&streams{out: &out, err: &errb}, nil, &delivery.FetchReport{}, nil, false); err != nil || !strings.Contains(errb.String(), "no new mail") {
		t.Fatalf("an empty fetch: %v, %q", err, errb.String())
	}
}
