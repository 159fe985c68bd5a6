package node

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/rendezvous"
	"github.com/flowmail/flowmail/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testNetwork = "node-test"

// hangGuard is the context of a test: it ends with the test, or after
// minutes, when something hangs. No test relies on it to pass.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is c on loopback in the test network. Every peer of these
// tests is alive, so timeouts only guard against hangs: a dial or a
// request that a busy machine makes slow must never count as a failure.
func testConfig(c Config) Config {
	if c.Network == "" {
		c.Network = testNetwork
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	c.NoIPLimits = true
	if c.DialTimeout == 0 {
		c.DialTimeout = time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Minute
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = time.Minute
	}
	return c
}

func startNode(t *testing.T, ctx context.Context, c Config) *Node {
	t.Helper()
	n, err := Start(ctx, testConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func dataBlock(t *testing.T, size int) []byte {
	t.Helper()
	p := make([]byte, size)
	if _, err := crand.Read(p); err != nil {
		t.Fatal(err)
	}
	return block.Data{Payload: p}.Encode()
}

// TestNodesMeetThroughTheMainlineDHT: two nodes with no peer list find
// each other through a mainline DHT on loopback and exchange a block.
func TestNodesMeetThroughTheMainlineDHT(t *testing.T) {
	ctx := hangGuard(t)
	m, err := rendezvous.StartLocalMainline(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The others wait for their first peer as long as the test may run:
	// the rendezvous hands it over as soon as it is found.
	mc := &MainlineConfig{Routers: m.Routers, Interval: 200 * time.Millisecond, JoinTimeout: 5 * time.Minute}
	// The first node has nobody to find: it waits briefly, then serves
	// (how briefly changes nothing: there is no one).
	first := *mc
	first.JoinTimeout = time.Second
	a := startNode(t, ctx, Config{DataDir: t.TempDir(), Mainline: &first})
	blk := dataBlock(t, 2000)
	id, err := a.Store().Put(ctx, blk, time.Hour, blockstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, ctx, Config{DataDir: t.TempDir(), Mainline: mc})
	if b.DHT().Size() == 0 {
		t.Fatal("the second node found nobody through the mainline DHT")
	}
	if _, err := b.Store().Stat(ctx, id); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("b holds the block before fetching it: %v", err)
	}
	got, err := b.Get(ctx, id)
	if err != nil || block.Sum(got) != id {
		t.Fatalf("b could not fetch a's block: %v", err)
	}

	// A client node (flowmail node --client) finds the network the same
	// way, without announcing itself.
	c := startNode(t, ctx, Config{DataDir: t.TempDir(), Mainline: mc, Client: true})
	if got, err := c.Get(ctx, id); err != nil || block.Sum(got) != id {
		t.Fatalf("a client found through the mainline DHT could not fetch a's block: %v", err)
	}
}

// TestTakenAdminPortFailsBeforeJoining: a second node on this machine
// with the same admin address fails at once, before it opens a store or
// joins (and, with the mainline DHT, announces) anything.
func TestTakenAdminPortFailsBeforeJoining(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	_, err = Start(t.Context(), testConfig(Config{DataDir: dir, Admin: ln.Addr().String()}))
	if !errors.Is(err, ErrAdminInUse) {
		t.Fatalf("start with a taken admin port: %v, want ErrAdminInUse", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StoreDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the store was opened before the admin port was checked: %v", err)
	}
}

func TestSecondNodeOnADataDirIsRefusedAsLocked(t *testing.T) {
	dir := t.TempDir()
	startNode(t, t.Context(), Config{DataDir: dir})
	_, err := Start(t.Context(), testConfig(Config{DataDir: dir}))
	if !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second node on one data dir: %v, want ErrStoreLocked", err)
	}
}

func TestTakenListenPortIsReportedAsInUse(t *testing.T) {
	first := startNode(t, t.Context(), Config{DataDir: t.TempDir()})
	_, err := Start(t.Context(), testConfig(Config{DataDir: t.TempDir(), Listen: first.Addr().String()}))
	if !errors.Is(err, ErrListenInUse) {
		t.Fatalf("second node on a taken UDP port: %v, want ErrListenInUse", err)
	}
}

// TestRestartedNodeRejoinsWithoutPeerList: a node restarted on its data
// directory rejoins through the peers it saved and serves its blocks.
func TestRestartedNodeRejoinsWithoutPeerList(t *testing.T) {
	ctx := hangGuard(t)
	seed := startNode(t, ctx, Config{DataDir: t.TempDir()})
	boot := []transport.Contact{seed.Contact()}
	_ = []*Node{startNode(t, ctx, Config{DataDir: t.TempDir(), Bootstrap: boot}), startNode(t, ctx, Config{DataDir: t.TempDir(), Bootstrap: boot})}
	dir := t.TempDir()
	c := startNode(t, ctx, Config{DataDir: dir, Bootstrap: boot, Listen: "127.0.0.1:0"})
	var ids []block.ID
	for range 10 {
		b := dataBlock(t, 1500)
		if err := c.Put(ctx, b, time.Hour); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, block.Sum(b))
	}
	// Data blocks live at the R = 3 closest of the 4 nodes: c holds those
	// of its puts it is among the closest of (almost surely some).
	var held []block.ID
	for _, id := range ids {
		if _, err := c.Store().Stat(ctx, id); err == nil {
			held = append(held, id)
		}
	}
	if len(held) == 0 {
		t.Fatal("the node holds none of the 10 blocks it put")
	}
	port := c.Addr().Port()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	again := startNode(t, ctx, Config{DataDir: dir, Listen: "127.0.0.1:" + strconv.Itoa(int(port))})
	if again.ID() != c.ID() {
		t.Fatal("the restarted node has another ID")
	}
	if again.DHT().Size() == 0 {
		t.Fatal("the restarted node knows no peers: it did not rejoin through its saved contacts")
	}
	for _, id := range held {
		if _, err := again.Store().Stat(ctx, id); err != nil {
			t.Fatalf("block %s lost across the restart: %v", id.Short(), err)
		}
	}
	// A client that knows only the restarted node fetches through it.
	cl := startNode(t, ctx, Config{Client: true, Bootstrap: []transport.Contact{again.Contact()}})
	for _, id := range ids {
		if _, err := cl.Get(ctx, id); err != nil {
			t.Fatalf("fetching %s through the restarted node: %v", id.Short(), err)
		}
	}
}

// metricSamples returns every sample of the admin endpoint's metrics.
func metricSamples(t *testing.T, ctx context.Context, addr string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scrape returns the value of one sample of the admin endpoint's metrics
// (0 when the sample is missing).
func scrape(t *testing.T, ctx context.Context, addr, sample string) float64 {
	t.Helper()
	return metricSamples(t, ctx, addr)[sample]
}

// TestOperationsCounterIsThereFromTheStart: docs/OPERATING.md lists
// flowmail_operations_total; an operator scraping a node that has done
// nothing yet sees it at zero rather than missing.
func TestOperationsCounterIsThereFromTheStart(t *testing.T) {
	ctx := hangGuard(t)
	a := startNode(t, ctx, Config{DataDir: t.TempDir(), Admin: "127.0.0.1:0"})
	got := metricSamples(t, ctx, a.AdminAddr())
	for _, op := range []string{"put", "get", "list", "delete"} {
		for _, outcome := range []string{"ok", "error", "timeout", "not_found"} {
			name := fmt.Sprintf(`flowmail_operations_total{op=%q,outcome=%q}`, op, outcome)
			if v, ok := got[name]; !ok || v != 0 {
				t.Errorf("%s: %v (present %v), want 0 on a fresh node", name, v, ok)
			}
		}
	}
}

// TestMetricsMoveWithStoresAndFetches: the admin endpoint's counters
// follow what the node does.
func TestMetricsMoveWithStoresAndFetches(t *testing.T) {
	ctx := hangGuard(t)
	a := startNode(t, ctx, Config{DataDir: t.TempDir(), Admin: "127.0.0.1:0"})
	b := startNode(t, ctx, Config{DataDir: t.TempDir(), Bootstrap: []transport.Contact{a.Contact()}})
	addr := a.AdminAddr()
	putsBefore := scrape(t, ctx, addr, `flowmail_operations_total{op="put",outcome="ok"}`)
	storesBefore := scrape(t, ctx, addr, `flowmail_rpc_server_duration_seconds_count{type="store"}`)
	blocksBefore := scrape(t, ctx, addr, "flowmail_store_blocks")
	for range 3 {
		if err := a.Put(ctx, dataBlock(t, 1000), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, dataBlock(t, 1000), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrape(t, ctx, addr, `flowmail_operations_total{op="put",outcome="ok"}`); got != putsBefore+3 {
		t.Errorf("put counter %v, want %v", got, putsBefore+3)
	}
	if got := scrape(t, ctx, addr, `flowmail_rpc_server_duration_seconds_count{type="store"}`); got < storesBefore+3 {
		t.Errorf("STOREs answered %v, want at least %v", got, storesBefore+3)
	}
	if got := scrape(t, ctx, addr, "flowmail_store_blocks"); got != blocksBefore+6 {
		t.Errorf("blocks held %v, want %v", got, blocksBefore+6)
	}
	if _, err := a.Get(ctx, block.Sum([]byte("nothing"))); err == nil {
		t.Fatal("found a block that does not exist")
	}
	if got := scrape(t, ctx, addr, `flowmail_operations_total{op="get",outcome="not_found"}`); got != 1 {
		t.Errorf("failed gets %v, want 1", got)
	}
	if scrape(t, ctx, addr, "flowmail_routing_table_contacts") != 1 || scrape(t, ctx, addr, `flowmail_peers{state="responsive"}`) != 1 {
		t.Error("routing table gauges do not show the one responsive peer")
	}
	st, err := FetchStatus(ctx, addr)
	if err != nil || st.ID != a.ID().String() || len(st.Peers) != 1 || st.Store == nil || st.Store.Blocks != int(blocksBefore)+6 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// TestQuotaKeepsTheBlocksNearestTheNode: storing twice the quota leaves
// the node holding, within its quota, the blocks closest to its own ID.
func TestQuotaKeepsTheBlocksNearestTheNode(t *testing.T) {
	ctx := hangGuard(t)
	const quota = 200 << 10
	n := startNode(t, ctx, Config{DataDir: t.TempDir(), QuotaBytes: quota})
	cl := startNode(t, ctx, Config{Client: true, Bootstrap: []transport.Contact{n.Contact()}})
	var sent []block.ID // the blocks the node took
	refused := 0
	// A client fills the free room; past it, one source may not make the
	// node evict more than its budget (blockstore NodeBudget), which
	// filling the room has used: the rest is refused, never held.
	for total := 0; total < 2*quota; {
		b := dataBlock(t, 4000)
		total += len(b)
		if err := cl.Put(ctx, b, time.Hour); err == nil {
			sent = append(sent, block.Sum(b))
		} else {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("one client stored twice the quota: no budget held it back")
	}
	// The node's own puts are not charged: they evict what lies
	// farthest from it.
	for total := 0; total < quota; {
		b := dataBlock(t, 4000)
		total += len(b)
		if err := n.Put(ctx, b, time.Hour); err == nil {
			sent = append(sent, block.Sum(b))
		}
	}
	st := n.Store().Stats()
	if st.Bytes > quota {
		t.Fatalf("store holds %d bytes, quota %d", st.Bytes, quota)
	}
	if st.Bytes < quota/2 {
		t.Fatalf("store holds only %d bytes of a %d quota", st.Bytes, quota)
	}
	// Every held block must be nearer the node than every evicted one.
	sort.Slice(sent, func(i, j int) bool { return block.Less(block.Xor(sent[i], n.ID()), block.Xor(sent[j], n.ID())) })
	seenDropped := false
	for _, id := range sent {
		_, err := n.Store().Stat(ctx, id)
		held := err == nil
		if held && seenDropped {
			t.Fatalf("block %s is held although a nearer block was dropped", id.Short())
		}
		if !held {
			seenDropped = true
		}
	}
	if !seenDropped {
		t.Fatal("nothing was dropped: the test stored too little")
	}
	if _, err := n.Store().Stat(ctx, n.ID()); err != nil {
		t.Fatalf("the node's own pubkey block was evicted: %v", err)
	}
}

// TestPubkeyIsRestoredBeforeItExpires: the upkeep the node runs daily
// pushes its pubkey block's expiry forward at the nodes holding it, to a
// full lifetime from the day it runs.
func TestPubkeyIsRestoredBeforeItExpires(t *testing.T) {
	ctx := hangGuard(t)
	clk := &clock.Offset{}
	a := startNode(t, ctx, Config{DataDir: t.TempDir(), Clock: clk})
	b := startNode(t, ctx, Config{DataDir: t.TempDir(), Clock: clk, Bootstrap: []transport.Contact{a.Contact()}})
	before, err := a.Store().Stat(ctx, b.ID())
	if err != nil {
		t.Fatalf("b's pubkey block was not published at join: %v", err)
	}
	clk.Advance(24 * time.Hour)
	day := clk.Now()
	if err := b.publishPubkey(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := a.Store().Stat(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	// The node hands its clock to its store, so the day passes there too
	// and the move is past blockstore.MinExtension (spec section 5).
	if got := after.Expires.Sub(before.Expires); got < 24*time.Hour-time.Second {
		t.Fatalf("a day later the expiry moved by %v, want a day", got)
	}
	// Lifetimes travel in whole seconds.
	if !after.Expires.After(day.Add(block.MaxLifetime - time.Second)) {
		t.Fatalf("re-stored to expire at %v, want a full %v after %v", after.Expires, block.MaxLifetime, day)
	}
}
