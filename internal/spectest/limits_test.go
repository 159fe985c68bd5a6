package spectest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/account"
	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/bridge"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/gateway"
	"github.com/flowmail/flowmail/grant"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
	"github.com/flowmail/flowmail/maillist"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/record"
	"github.com/flowmail/flowmail/server"
	"github.com/flowmail/flowmail/transport"
)

// limits maps each name in the spec's limits table (docs/PROTOCOL.md,
// section 11) to the Go value that holds it.
//
// To add a row to that table, add one line here: the name exactly as the
// table's first column spells it (without backticks), and the constant.
// A time.Duration constant needs a time unit in the table (ms, s, min, h,
// days); an integer one a plain number or a size (bytes, KiB, MiB, GiB);
// an array or slice a comma-separated list. A constant kept in other
// units is converted here, e.g. time.Duration(pkg.FooSeconds) *
// time.Second. Words in parentheses in the table are commentary and not
// compared.
var limits = map[string]any{
	"MaxBlockSize":      block.MaxBlockSize,
	"MaxLifetime":       block.MaxLifetime,
	"MaxDifficulty":     block.MaxDifficulty,
	"DefaultDifficulty": block.DefaultDifficulty,
	"MinIndexSize":      block.MinIndexSize,
	"PubkeySize":        block.PubkeySize,
	"MaxFrameSize":      transport.MaxFrameSize,
	"MaxStreamsPerConn": transport.MaxStreamsPerConn,

	"MaxNetworkName":          transport.MaxNetworkName,
	"MaxAdvertised":           transport.MaxAdvertised,
	"MaxInbound":              transport.MaxInbound,
	"MaxOutbound":             transport.MaxOutbound,
	"MaxInboundPerGroup":      transport.MaxInboundPerGroup,
	"MaxHandshakes":           transport.MaxHandshakes,
	"MaxHandshakesPerGroup":   transport.MaxHandshakesPerGroup,
	"MaxQUICHandshakes":       transport.MaxQUICHandshakes,
	"MaxHandlers":             transport.MaxHandlers,
	"MaxHandlersPerGroup":     transport.MaxHandlersPerGroup,
	"FrameGrace":              transport.FrameGrace,
	"MinFrameRate":            transport.MinFrameRate,
	"DefaultDialTimeout":      transport.DefaultDialTimeout,
	"DefaultHandshakeTimeout": transport.DefaultHandshakeTimeout,
	"DefaultRequestTimeout":   transport.DefaultRequestTimeout,
	"DefaultIdleTimeout":      transport.DefaultIdleTimeout,
	"K":                       kademlia.K,
	"MaxNodes":                kademlia.MaxNodes,
	"alpha":                   kademlia.Alpha,
	"BlockAlpha":              kademlia.BlockAlpha,
	"MaxListEntries":          kademlia.MaxListEntries,
	"MaxDeleteMany":           kademlia.MaxDeleteMany,
	"MaxStoreMany":            kademlia.MaxStoreMany,
	"MaxListPages":            kademlia.MaxListPages,
	"MaxListResults":          kademlia.MaxListResults,
	"ContactFreshness":        kademlia.ContactFreshness,
	"RepublishInterval":       kademlia.RepublishInterval,
	"SyncInterval":            blockstore.DefaultSyncInterval,
	"MaxRecipients":           mail.MaxRecipients,
	"RouteBits":               mail.RouteBits,
	"GrantSize":               grant.Size,
	"MaxClaimsPerFetch":       delivery.MaxClaimsPerFetch,
	"MaxListMembers":          maillist.MaxMembers,
	"MaxListName":             maillist.MaxNameLen,
	"MaxMessageSize":          mail.MaxMessageSize,

	"MaxHeaderSize":          mail.MaxHeaderSize,
	"HashChunk":              mail.HashChunk,
	"MaxWindow":              mail.MaxWindow,
	"MaxCompressedLen":       mail.MaxCompressedLen,
	"ShardSizes":             mail.ShardSizes,
	"MaxShardSize":           mail.MaxShardSize,
	"GroupDataShards":        mail.GroupDataShards,
	"LastGroupMaxData":       mail.LastGroupMaxData,
	"MaxGroups":              mail.MaxGroups,
	"MaxShards":              mail.MaxShards,
	"ShardReplicas":          block.ShardReplicas,
	"ShardRepublishInterval": block.ShardRepublishInterval,

	"MinExtension":      blockstore.MinExtension,
	"NodeBudgetShare":   blockstore.NodeBudgetShare,
	"GroupBudgetShare":  blockstore.GroupBudgetShare,
	"BudgetHalfLife":    blockstore.BudgetHalfLife,
	"MaxMeteredSources": blockstore.MaxMeteredSources,

	"PacketSize":       onion.PacketSize,
	"Hops":             onion.Hops,
	"MinStampWork":     onion.MinStampWork,
	"MaxHopDelay":      onion.MaxHopDelay,
	"Epoch":            onion.Epoch,
	"ReplayEntries":    onion.ReplayEntries,
	"QueueSize":        onion.QueueSize,
	"HoldSize":         onion.HoldSize,
	"MaxSURBs":         onion.MaxSURBs,
	"MaxListReply":     onion.MaxListReply,
	"MaxGetChunk":      onion.MaxGetChunk,
	"MaxRecordReply":   onion.MaxRecordReply,
	"MaxAssemblies":    onion.MaxAssemblies,
	"AssemblyTimeout":  onion.AssemblyTimeout,
	"GuardMinLifetime": onion.GuardMinLifetime,
	"GuardMaxLifetime": onion.GuardMaxLifetime,
	"GuardGrace":       onion.GuardGrace,
	"QueuedPerSource":  onion.QueuedPerSource,

	"OnionPacketsPerSecond": node.OnionPacketsPerSecond,
	"OnionBurst":            node.OnionBurst,
	"MaxOnionExits":         node.MaxOnionExits,
	"MaxOnionForwards":      node.MaxOnionForwards,
	"OnionExitTimeout":      node.OnionExitTimeout,
	"RecordExits":           node.RecordExits,

	"MaxRecordSize":    block.MaxRecordSize,
	"MaxRotations":     block.MaxRotations,
	"MaxKeyEvents":     record.MaxKeyEvents,
	"GracePeriod":      identity.GracePeriod,
	"MaxDelegation":    record.MaxDelegation,
	"MaxDelegates":     record.MaxDelegates,
	"MaxNameValidity":  record.MaxNameValidity,
	"MaxNameSize":      record.MaxNameSize,
	"MaxLocalPart":     record.MaxLocalPart,
	"SafetyIterations": record.SafetyIterations,
	"SafetyGroups":     record.SafetyGroups,
	"RecordRate":       kademlia.RecordRate,
	"RecordBurst":      kademlia.RecordBurst,
	"RecordGroupRate":  kademlia.RecordGroupRate,
	"RecordGroupBurst": kademlia.RecordGroupBurst,

	"SessionTimeout":         server.SessionTimeout,
	"MaxSessions":            server.MaxSessions,
	"MaxSessionsPerSource":   server.MaxSessionsPerSource,
	"LoginsPerAccount":       server.LoginsPerAccount,
	"LoginsPerSource":        server.LoginsPerSource,
	"RegistrationsPerSource": server.RegistrationsPerSource,
	"StretchesPerAccount":    server.StretchesPerAccount,
	"StretchesPerSource":     server.StretchesPerSource,
	"MinArgon2Time":          account.MinArgon2Time,
	"MaxArgon2Time":          account.MaxArgon2Time,
	"MinArgon2MemoryKiB":     account.MinArgon2MemoryKiB,
	"MaxArgon2MemoryKiB":     account.MaxArgon2MemoryKiB,
	"MinArgon2Lanes":         account.MinArgon2Lanes,
	"MaxArgon2Lanes":         account.MaxArgon2Lanes,
	"LimitWindow":            server.LimitWindow,
	"MaxAccountLen":          server.MaxAccountLen,
	"MaxSealedSize":          account.MaxSealedSize,
	"ConfirmSkew":            server.ConfirmSkew,
	"HoldsPerSource":         server.HoldsPerSource,
	"MaxHeldIDs":             server.MaxHeldIDs,
	"MaxStatusText":          server.MaxStatusText,
	"MaxHeldMails":           server.MaxHeldMails,
	"MaxHeldOwners":          server.MaxHeldOwners,
	"MaxCollectPerRound":     server.MaxCollectPerRound,
	"DefaultHeldQuota":       server.DefaultHeldQuota,

	"MaxTXTSize":            naming.MaxTXTSize,
	"DefaultAttemptTimeout": naming.DefaultAttemptTimeout,
	"DefaultLookupTimeout":  naming.DefaultLookupTimeout,
	"MaxCarriedSize":        naming.MaxCarriedSize,
	"CertRepublishEvery":    naming.CertRepublishEvery,
	"CertRepublishInterval": naming.CertRepublishInterval,
	"CertRepublishPerRound": naming.CertRepublishPerRound,
	"CertRenewalNotice":     naming.CertRenewalNotice,
	"MaxFailuresPerSource":  bridge.MaxFailuresPerSource,
	"MaxFailuresPerAccount": bridge.MaxFailuresPerAccount,
	"FailureWindow":         bridge.FailureWindow,
	"MaxQueueRecipients":    mailbox.MaxQueueRecipients,
	"MaxInboundSize":        gateway.MaxInboundSize,
	"MaxInboundHeader":      gateway.MaxInboundHeader,
	"MaxInboundSessions":    gateway.MaxInboundSessions,
	"InboundPerSender":      gateway.InboundPerSender,
	"InboundPerSource":      gateway.InboundPerSource,
	"OutboundPerSender":     gateway.OutboundPerSender,
	"RateWindow":            gateway.RateWindow,
	"MaxRelayRecipients":    gateway.MaxRelayRecipients,
	"MaxOutboundSize":       gateway.MaxOutboundSize,
	"MaxRelayAttempts":      gateway.MaxRelayAttempts,
	"MaxDeferred":           gateway.MaxDeferred,
	"MaxBounceDifficulty":   gateway.MaxBounceDifficulty,
	"MaxSMTPReply":          gateway.MaxSMTPReply,
}

const specPath = "../../docs/PROTOCOL.md"

// TestLimitsTableMatchesConstants: every row of the spec's limits table
// has a constant in limits holding its value, and every name in limits
// has a row.
func TestLimitsTableMatchesConstants(t *testing.T) {
	f, err := os.Open(specPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := limitsTable(f)
	if err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	for _, p := range checkLimits(rows, limits) {
		t.Errorf("docs/PROTOCOL.md limits table vs limits in internal/spectest/limits_test.go: %s", p)
	}
}

// A row is one line of the limits table.
type row struct {
	line        int
	name, value string
}

var (
	errNoTable  = errors.New("no limits table")
	errBadTable = errors.New("malformed limits table")
)

// limitsHeading is the title of the limits section, whatever its number.
var limitsHeading = regexp.MustCompile(`^## [0-9]+\. Limits\s*$`)

// limitsTable reads the first table under the "Limits" heading, taking
// the columns headed name and value.
func limitsTable(spec io.Reader) ([]row, error) {
	sc := bufio.NewScanner(spec)
	var (
		rows             []row
		inSection        bool
		header           []string
		nameCol, valCol  = -1, -1
		line, tableLines int
	)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		switch {
		case limitsHeading.MatchString(text):
			inSection = true
			continue
		case !inSection:
			continue
		case strings.HasPrefix(text, "#"):
			inSection = false // the next section: the table has ended
			continue
		case !strings.HasPrefix(text, "|"):
			if tableLines > 0 {
				inSection = false
			}
			continue
		}
		tableLines++
		cells := splitRow(text)
		switch tableLines {
		case 1:
			header = cells
			nameCol, valCol = slices.Index(header, "name"), slices.Index(header, "value")
			if nameCol < 0 || valCol < 0 {
				return nil, fmt.Errorf("%w: line %d: header %q has no name and value columns", errBadTable, line, header)
			}
		case 2: // the |---|---| separator
		default:
			if len(cells) != len(header) {
				return nil, fmt.Errorf("%w: line %d: %d cells, header has %d", errBadTable, line, len(cells), len(header))
			}
			rows = append(rows, row{line: line, name: strings.Trim(cells[nameCol], "`"), value: cells[valCol]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errNoTable
	}
	return rows, nil
}

func splitRow(text string) []string {
	cells := strings.Split(strings.Trim(text, "|"), "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// checkLimits compares the table with the constants and describes each
// disagreement.
func checkLimits(rows []row, consts map[string]any) []string {
	var problems []string
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.name] {
			problems = append(problems, fmt.Sprintf("line %d: %q appears twice", r.line, r.name))
			continue
		}
		seen[r.name] = true
		c, ok := consts[r.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("line %d: %q (%s) has no constant: add the line %q: pkg.%s, to limits", r.line, r.name, r.value, r.name, r.name))
			continue
		}
		if err := sameValue(r.value, c); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %q: %v", r.line, r.name, err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(consts)) {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("%q is in limits but not in the table", name))
		}
	}
	return problems
}

// A quantity is one number of the table with its dimension.
type quantity struct {
	n   int64
	dim dimension
}

type dimension int

const (
	count    dimension = iota // a plain number
	size                      // bytes
	duration                  // nanoseconds
)

var units = map[string]quantity{
	"":      {1, count},
	"bytes": {1, size},
	"B":     {1, size},
	"KiB":   {1 << 10, size},
	"MiB":   {1 << 20, size},
	"GiB":   {1 << 30, size},
	"ms":    {int64(time.Millisecond), duration},
	"s":     {int64(time.Second), duration},
	"min":   {int64(time.Minute), duration},
	"h":     {int64(time.Hour), duration},
	"days":  {int64(24 * time.Hour), duration},
}

var errBadValue = errors.New("value not understood")

var (
	parenthetical = regexp.MustCompile(`\([^)]*\)`)
	amount        = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]*)$`)
)

// parseValue reads a table value: numbers with an optional unit,
// separated by commas, with commentary in parentheses dropped.
func parseValue(s string) ([]quantity, error) {
	s = strings.TrimSpace(parenthetical.ReplaceAllString(s, ""))
	var qs []quantity
	for item := range strings.SplitSeq(s, ",") {
		m := amount.FindStringSubmatch(strings.TrimSpace(item))
		if m == nil {
			return nil, fmt.Errorf("%w: %q is not a number with an optional unit", errBadValue, item)
		}
		u, ok := units[m[2]]
		if !ok {
			return nil, fmt.Errorf("%w: unit %q (known: bytes, B, KiB, MiB, GiB, ms, s, min, h, days)", errBadValue, m[2])
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > (1<<63-1)/u.n {
			return nil, fmt.Errorf("%w: %q out of range", errBadValue, item)
		}
		qs = append(qs, quantity{n * u.n, u.dim})
	}
	return qs, nil
}

// sameValue reports how the table's value differs from the Go value c.
func sameValue(value string, c any) error {
	qs, err := parseValue(value)
	if err != nil {
		return err
	}
	var want []any
	v := reflect.ValueOf(c)
	switch v.Kind() {
	case reflect.Array, reflect.Slice:
		for i := range v.Len() {
			want = append(want, v.Index(i).Interface())
		}
	default:
		want = []any{c}
	}
	if len(qs) != len(want) {
		return fmt.Errorf("the table has %d values (%s), the constant %d (%v)", len(qs), value, len(want), c)
	}
	for i, w := range want {
		q := qs[i]
		if d, ok := w.(time.Duration); ok {
			if q.dim != duration || q.n != int64(d) {
				return fmt.Errorf("the table says %s, the constant is %v", value, c)
			}
			continue
		}
		wv := reflect.ValueOf(w)
		var n int64
		switch {
		case wv.CanInt():
			n = wv.Int()
		case wv.CanUint() && wv.Uint() < 1<<63:
			n = int64(wv.Uint())
		default:
			return fmt.Errorf("constant %v of type %T: want an integer, a time.Duration or a list of them", w, w)
		}
		if q.dim == duration || q.n != n {
			return fmt.Errorf("the table says %s, the constant is %v", value, c)
		}
	}
	return nil
}
