package kademlia

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/transport"
)

var updateTranscripts = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/lookup transcripts")

// TestLookupTranscripts replays the scripts in testdata/lookup against
// lookupMachine, as etcd's raft tests replay theirs. Each case is
//
//	command arg key=value ...
//	input lines (contacts)
//	----
//	expected output
//	(blank line)
//
// Contacts are named by one hex byte: "05" is the ID whose first byte is
// 0x05 (last byte 1), at 10.0.0.5:4433 unless written "05@addr:port"
// ("05@-": no address).
// The target is the zero ID, so a smaller name is closer; the own ID is
// "ff". Times are durations since the lookup's epoch.
//
// Commands:
//
//	init k=N alpha=N [stall=D] [block] [failing=05,06] [self=ff] [groups=N]
//	     [width=N] [span=N]          width: lookupParams.width; span:
//	                                 lookupParams.groups
//	     [held=05@addr,...]          the routing table holds 05 at addr
//	start [at=T] [stall=D]          the table's closest (input)
//	nodes FROM [at=T]               FROM answered NODES (input)
//	block FROM [at=T]               FROM answered a verified BLOCK
//	fail FROM [at=T] [fault=X] [wrong]
//	                                the request failed; X is whom to
//	                                charge: FROM's contact (default),
//	                                none, or a contact; wrong: another
//	                                node answered at the address
//	tick at=T                       the stall timer fired
//	cancel [at=T]                   the caller gave up
//	result                          the K closest that answered, stats
//
// A step prints what the driver must do: "send", "send-stalled" (asked
// as stalled from the start), "stalled" and "charge" (routing-table
// charges), "liar" (drop from the routing table), "timer T", "done".
//
// Run with -rewrite to rewrite the expected outputs, then review the diff.
func TestLookupTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/lookup/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts (%v)", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTranscript(t, file)
		})
	}
}

type transcriptCase struct {
	line   int
	cmd    string
	input  []string
	output string
}

func parseTranscript(t *testing.T, file string) (cases []transcriptCase, comments map[int][]string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	comments = make(map[int][]string)
	sc := bufio.NewScanner(f)
	n := 0
	var pending []string
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "#") || (strings.TrimSpace(line) == "" && len(pending) == 0) {
			pending = append(pending, line)
			continue
		}
		c := transcriptCase{line: n, cmd: line}
		comments[len(cases)] = pending
		pending = nil
		for sc.Scan() {
			n++
			if sc.Text() == "----" {
				break
			}
			c.input = append(c.input, sc.Text())
		}
		var out []string
		for sc.Scan() {
			n++
			if sc.Text() == "" {
				break
			}
			out = append(out, sc.Text())
		}
		c.output = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	comments[len(cases)] = pending
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases, comments
}

// transcript is the state of one replay.
type transcript struct {
	t       *testing.T
	m       *lookupMachine
	epoch   time.Time
	stall   time.Duration
	failing map[block.ID]bool
	held    map[block.ID]transport.Contact // the routing table's entries
}

func runTranscript(t *testing.T, file string) {
	cases, comments := parseTranscript(t, file)
	tr := &transcript{t: t, epoch: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var rewritten strings.Builder
	for i, c := range cases {
		got, err := tr.run(c)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", file, c.line, c.cmd, err)
		}
		if got != c.output && !*updateTranscripts {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", file, c.line, c.cmd, indent(got), indent(c.output))
		}
		for _, l := range comments[i] {
			rewritten.WriteString(l + "\n")
		}
		rewritten.WriteString(c.cmd + "\n")
		for _, l := range c.input {
			rewritten.WriteString(l + "\n")
		}
		rewritten.WriteString("----\n")
		if got != "" {
			rewritten.WriteString(got + "\n")
		}
		rewritten.WriteString("\n")
	}
	if *updateTranscripts {
		out := strings.TrimRight(rewritten.String(), "\n") + "\n"
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// transcriptID is the ID named by one hex byte.
func transcriptID(name string) (block.ID, error) {
	b, err := hex.DecodeString(name)
	if err != nil || len(b) != 1 {
		return block.ID{}, fmt.Errorf("contact name %q is not one hex byte", name)
	}
	var id block.ID
	id[0], id[block.IDSize-1] = b[0], 1
	return id, nil
}

func transcriptAddr(id block.ID) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, id[0]}), 4433)
}

func transcriptContact(s string) (transport.Contact, error) {
	name, addr, hasAddr := strings.Cut(s, "@")
	id, err := transcriptID(name)
	if err != nil {
		return transport.Contact{}, err
	}
	c := transport.Contact{ID: id, Addr: transcriptAddr(id)}
	switch {
	case addr == "-":
		c.Addr = netip.AddrPort{}
	case hasAddr:
		if c.Addr, err = netip.ParseAddrPort(addr); err != nil {
			return transport.Contact{}, err
		}
	}
	return c, nil
}

func transcriptName(c transport.Contact) string {
	if c.ID.IsZero() {
		return "none"
	}
	s := hex.EncodeToString(c.ID[:1])
	switch {
	case !c.Addr.IsValid():
		s += "@-"
	case c.Addr != transcriptAddr(c.ID):
		s += "@" + c.Addr.String()
	}
	return s
}

func names(cs []transport.Contact) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = transcriptName(c)
	}
	return strings.Join(s, " ")
}

func (tr *transcript) run(c transcriptCase) (string, error) {
	fields := strings.Fields(c.cmd)
	args := make(map[string]string)
	var pos []string
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	var input []transport.Contact
	for _, l := range c.input {
		for _, f := range strings.Fields(l) {
			ct, err := transcriptContact(f)
			if err != nil {
				return "", err
			}
			input = append(input, ct)
		}
	}
	if fields[0] == "init" {
		return "", tr.init(args, pos)
	}
	if tr.m == nil {
		return "", fmt.Errorf("%s before init", fields[0])
	}
	ev := lookupEvent{now: tr.epoch, stall: tr.stall}
	if v, ok := args["at"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return "", err
		}
		ev.now = tr.epoch.Add(d)
	}
	if v, ok := args["stall"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return "", err
		}
		ev.stall = d
	}
	var from transport.Contact
	if len(pos) > 0 {
		var err error
		if from, err = transcriptContact(pos[0]); err != nil {
			return "", err
		}
		ev.from = from.ID
	}
	switch fields[0] {
	case "start":
		ev.kind, ev.contacts = evStart, input
	case "nodes":
		ev.kind, ev.contacts = evNodes, input
	case "block":
		ev.kind, ev.block, ev.lifetime = evBlock, []byte("the block"), 60
	case "fail":
		ev.kind, ev.wrongPeer = evFailed, slices.Contains(pos, "wrong")
		if known := tr.m.known[from.ID]; known != nil {
			ev.fault = known.Contact
		}
		switch v := args["fault"]; v {
		case "":
		case "none":
			ev.fault = transport.Contact{}
		default:
			f, err := transcriptContact(v)
			if err != nil {
				return "", err
			}
			ev.fault = f
		}
	case "tick":
		ev.kind = evTick
	case "cancel":
		ev.kind = evCancel
	case "result":
		return tr.result(), nil
	default:
		return "", fmt.Errorf("unknown command %q", fields[0])
	}
	return tr.ready(tr.m.step(ev)), nil
}

func (tr *transcript) init(args map[string]string, pos []string) error {
	p := lookupParams{k: 3, alpha: 2}
	p.self, _ = transcriptID("ff")
	tr.stall = 0
	tr.failing = make(map[block.ID]bool)
	tr.held = make(map[block.ID]transport.Contact)
	for k, v := range args {
		var err error
		switch k {
		case "k":
			_, err = fmt.Sscan(v, &p.k)
		case "alpha":
			_, err = fmt.Sscan(v, &p.alpha)
		case "groups":
			_, err = fmt.Sscan(v, &p.groupLimit)
		case "width":
			_, err = fmt.Sscan(v, &p.width)
		case "span":
			_, err = fmt.Sscan(v, &p.groups)
		case "stall":
			tr.stall, err = time.ParseDuration(v)
		case "self":
			p.self, err = transcriptID(v)
		case "failing":
			for _, n := range strings.Split(v, ",") {
				id, err := transcriptID(n)
				if err != nil {
					return err
				}
				tr.failing[id] = true
			}
		case "held":
			for _, n := range strings.Split(v, ",") {
				c, err := transcriptContact(n)
				if err != nil {
					return err
				}
				tr.held[c.ID] = c
			}
		default:
			err = fmt.Errorf("unknown init argument %q", k)
		}
		if err != nil {
			return err
		}
	}
	p.wantBlock = slices.Contains(pos, "block")
	p.table = func(c transport.Contact) (transport.Contact, bool) {
		if h, ok := tr.held[c.ID]; ok {
			c = h
		}
		return c, tr.failing[c.ID]
	}
	tr.m = newLookupMachine(p)
	return nil
}

func (tr *transcript) ready(rd lookupReady) string {
	var out []string
	var sent, sentStalled []transport.Contact
	for _, c := range rd.send {
		if tr.m.known[c.ID].state == stalled {
			sentStalled = append(sentStalled, c)
		} else {
			sent = append(sent, c)
		}
	}
	for _, l := range []struct {
		what string
		cs   []transport.Contact
	}{{"send", sent}, {"send-stalled", sentStalled}, {"stalled", rd.stalled}, {"charge", rd.charge}, {"liar", rd.liars}} {
		if len(l.cs) > 0 {
			out = append(out, l.what+" "+names(l.cs))
		}
	}
	if !rd.timer.IsZero() {
		out = append(out, "timer "+rd.timer.Sub(tr.epoch).String())
	}
	if rd.done {
		out = append(out, "done")
	}
	return strings.Join(out, "\n")
}

func (tr *transcript) result() string {
	st := tr.m.finalStats()
	out := []string{
		"closest " + names(tr.m.closest()),
		fmt.Sprintf("hops %d rounds %d messages %d failed %d stalled %d inflight %d", st.Hops, st.Rounds, st.Messages, st.Failed, st.Stalled, tr.m.inflight),
	}
	if tr.m.found != nil {
		out = append(out, fmt.Sprintf("found %q lifetime %d", tr.m.found, tr.m.lifetime))
	}
	return strings.Join(out, "\n")
}
