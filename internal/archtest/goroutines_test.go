package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The goroutine rule: each component owns the goroutines it starts and
// joins them before the call that stops it returns (Close, Stop, or the
// function that started them). node glues components together and owns
// only its own loops; it does not own what the store, the transport or
// the DHT start.
//
// goroutineSites lists every place in the repository's non-test code
// that starts a goroutine (a go statement, or a call of a method named
// Go with one argument, as sync.WaitGroup.Go), by directory and the
// function it sits in, with how many it has there and who stops and
// joins them. A new site fails TestGoroutineSites until it is listed
// here with its owner; so does a listed site that is gone. Test files
// are left out: each package's TestMain checks them for leaks (goleak).
var goroutineSites = map[string]struct {
	n     int
	owner string
}{
	"blockstore OpenBadger":               {2, "the Badger store: its writer and maintenance loop; Close stops both and waits (wg)"},
	"blockstore/internal/rssprobe run":    {1, "the probe's own wait group, waited in run"},
	"internal/nsdtest run":                {1, "the reader of nsd's log: it ends when nsd does, which the test's Cleanup waits for (done)"},
	"internal/rawquic Open":               {1, "the raw QUIC pair's server; Close cancels and waits (wg)"},
	"kademlia fanOut":                     {1, "fanOut itself: one per contact, waited before it returns"},
	"kademlia fanOutLimited":              {1, "fanOutLimited itself, waited before it returns"},
	"kademlia DHT.runLookup":              {1, "runLookup: every request it sent has answered on the results channel before it returns"},
	"kademlia/kadsim Parallel":            {1, "Parallel itself, waited before it returns"},
	"kademlia/kadsim Net.JoinThrough":     {1, "JoinThrough itself: one bootstrap per node of a wave, waited before the next wave"},
	"kademlia/kadsim Net.identities":      {1, "identities itself: key generation workers, waited before it returns"},
	"kademlia DHT.DeleteMany":             {2, "DeleteMany itself: it waits for its DELETE_MANYs, then for the deletes of the rest (wg), before it returns"},
	"kademlia DHT.PutDataMany":            {2, "PutDataMany itself: it waits for its STORE_MANYs, then for the puts of the rest (wg), before it returns"},
	"kademlia DHT.Republish":              {1, "Republish itself, waited before it returns"},
	"cmd/flowmail startCertRepublisher":   {1, "runNode: the domain owner's certificate republisher; the function it returns cancels and waits (stopped), called before the node closes"},
	"delivery Fetch":                      {1, "Fetch itself: a delivered mail's deletes, waited (deletes) before it returns"},
	"delivery forEach":                    {1, "forEach itself, waited before it returns"},
	"bridge Start":                        {4, "the bridge: IMAP and SMTP servers, fetch and send loops; Close cancels and waits (wg)"},
	"gateway Start":                       {2, "the gateway: its SMTP server and outbound loop; Close cancels, closes the server and waits (wg)"},
	"delivery groupFetcher.shards":        {1, "shards itself: it drains every shard request in flight before it returns"},
	"mail Codec.Build":                    {1, "Build itself: the recipients' HPKE encapsulations, waited (encaps) before the index blocks are sealed and on every return"},
	"mail Codec.copyMessage":              {1, "copyMessage itself: the hashing goroutine is waited before it returns"},
	"mail Codec.encodeEnvelope":           {1, "encodeEnvelope itself: the signing goroutine is waited before it returns"},
	"mail sumBlocks":                      {1, "sumBlocks itself: its hashing workers are waited before it returns"},
	"mail Codec.sealGroup":                {1, "sealGroup itself: its hashing workers are waited (wg) before it returns"},
	"node serveAdmin":                     {1, "the node's admin server; Node.Close shuts it down and waits (done)"},
	"node Node.watchMainline":             {1, "the node; Close cancels its loops and waits (wg)"},
	"node Node.goLoop":                    {1, "the node; Close cancels its loops and waits (wg)"},
	"node onionRelay.start":               {1, "the node; Close cancels the relay loop and waits (wg)"},
	"node onionRelay.spawn":               {1, "the node; one per packet handed on (at most MaxOnionForwards) or exit request (at most MaxOnionExits, each bounded by OnionExitTimeout), under the relay's context; Close cancels it and waits (wg)"},
	"node OnionNetwork.findRelays":        {2, "OnionNetwork.findRelays itself (for fillPool and growPool); OnionPoolLookups random lookups, then one pubkey lookup per contact, each batch joined before it goes on (wg)"},
	"node OnionNetwork.Records":           {1, "OnionNetwork.Records itself; one lookup per exit (RecordExits), each bounded by its context and the paths' waits, all received before it returns"},
	"pow solve":                           {2, "Solve: the workers (wg) and the one that closes done when they end, all joined before it returns"},
	"rendezvous Rendezvous.startInstance": {1, "the rendezvous: the drain of one library node, joined by stopInstance"},
	"rendezvous stopDHT":                  {1, "stopDHT: waits for the library's Stop, at most its timeout (the library can wedge; see its doc)"},
	"rendezvous Start":                    {1, "the rendezvous' rounds loop; Close cancels and waits (roundsWG)"},
	"server Start":                        {1, "the server's held-mail collector (Holder.Run); Close cancels it and waits (done) before closing the node"},
	"testnet Start":                       {1, "Start: one per node of a batch, waited before the next batch"},
	"testnet Net.Close":                   {1, "Net.Close: one per node closing, waited before it returns"},
	"transport MemEndpoint.deliver":       {1, "the in-memory endpoint: one per request served; Close waits (wg)"},
	"transport ListenQUIC":                {1, "the QUIC transport's accept loop; Close waits (wg)"},
	"transport QUIC.acceptLoop":           {2, "the QUIC transport: one handshake per incoming connection, and closing a connection evicted for it; Close waits (wg)"},
	"transport QUIC.connContext":          {1, "the QUIC transport: closes a pre-HELLO connection evicted for a newcomer; Close waits (wg)"},
	"transport QUIC.handshake":            {1, "the QUIC transport: serves a connection once its HELLO is verified; Close waits (wg)"},
	"transport QUIC.retireLocked":         {1, "the QUIC transport: drains a retired connection; Close waits (wg)"},
	"transport QUIC.connFor":              {1, "the QUIC transport: one dial, shared by concurrent requests; Close waits (wg)"},
	"transport QUIC.serveConn":            {1, "the QUIC transport: one per stream served; Close waits (wg)"},
}

func TestGoroutineSites(t *testing.T) {
	found, err := findGoroutineSites("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 10 {
		t.Fatalf("found only %d goroutine sites: is the walk in the right place?", len(found))
	}
	var sites []string
	for site := range found {
		sites = append(sites, site)
	}
	sort.Strings(sites)
	for _, site := range sites {
		want, ok := goroutineSites[site]
		switch {
		case !ok:
			t.Errorf("%s starts %d goroutine(s) and is not in goroutineSites: add it with the owner that stops and joins them", site, found[site])
		case found[site] > want.n:
			t.Errorf("%s starts goroutines at %d places, %d listed: update goroutineSites with their owner", site, found[site], want.n)
		}
	}
	for site := range goroutineSites {
		if found[site] == 0 {
			t.Errorf("%s is listed in goroutineSites but starts no goroutine any more: remove it", site)
		}
	}
}

// findGoroutineSites counts, per "dir Func" (dir relative to root, Func
// the enclosing top-level function, Type.Method for methods), the go
// statements and X.Go(f) calls in the non-test Go files under root.
func findGoroutineSites(root string) (map[string]int, error) {
	found := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			site := filepath.ToSlash(dir) + " " + funcName(fd)
			ast.Inspect(fd, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					found[site]++
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Go" && len(n.Args) == 1 {
						found[site]++
					}
				}
				return true
			})
		}
		return nil
	})
	return found, err
}

// funcName is F for a function and T.M for a method of T or *T.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fmt.Sprintf("%T.%s", t, fd.Name.Name)
}
