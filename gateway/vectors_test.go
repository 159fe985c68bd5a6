package gateway

import (
	"bufio"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/internal/vectors"
	"github.com/flowmail/flowmail/mail"
)

var sentinels = []error{ErrMalformed, ErrFrom, ErrFlowmailSender, ErrNoRelay, ErrRecipient}

// vectorGateway is the gateway address of the vectors: a fixed pattern.
var vectorGateway = block.ID(vectors.Pattern(32, 7))

func TestVectors(t *testing.T) {
	vectors.Check(t, "gateway.json", gatewayVectors, checkVector)
}

func checkVector(v vectors.Vector) (map[string]string, string) {
	switch v.Function {
	case "Wrap":
		in, err := ParseInbound([]byte(v.Input), v.Params["domain"])
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		out := Wrap(in, WrapInput{Gateway: vectorGateway, AuthResults: v.Params["auth_results"], Received: v.Params["received"], Now: time.Unix(1796188000, 0)})
		return map[string]string{"message": string(out), "from_host": in.FromHost}, ""
	case "Relay":
		o, err := ParseOutbound(bufio.NewReaderSize(strings.NewReader(v.Input), mail.MaxHeaderSize), v.Params["domain"])
		if err != nil {
			return nil, vectors.RuleName(err, sentinels...)
		}
		head := o.RelayHeaderBytes(v.Params["name"], v.Params["message_id"])
		return map[string]string{"header": string(head), "relay_to": strings.Join(o.RelayTo, ",")}, ""
	case "DecodeRetryFile":
		q, err := decodeRetries([]byte(v.Input))
		if err != nil {
			return nil, vectors.RuleName(err, ErrRetryState)
		}
		names := make([]string, 0, len(q))
		for n := range q {
			names = append(names, n)
		}
		sort.Strings(names)
		var lines []string
		for _, n := range names {
			lines = append(lines, fmt.Sprintf("%s attempts=%d next=%d done=%d", n, q[n].attempts, q[n].next.Unix(), q[n].done))
		}
		return map[string]string{"mails": strings.Join(lines, "; ")}, ""
	}
	return nil, "unknown function " + v.Function
}

func gatewayVectors() vectors.File {
	in := func(s string) string { return string(crlf(s)) }
	ar := "gw.example.test; spf=pass smtp.mailfrom=bob@legacy.test; dkim=pass header.d=legacy.test; dmarc=pass header.from=legacy.test"
	wrap := func(name, msg, errName, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "Wrap", Input: in(msg), Error: errName, Note: note,
			Params: map[string]string{"domain": domain, "auth_results": ar, "received": "from mta.legacy.test (192.0.2.1) by gw.example.test with ESMTP; Wed, 02 Dec 2026 05:00:00 +0000"}}
	}
	relay := func(name, msg, errName, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "Relay", Input: in(msg), Error: errName, Note: note,
			Params: map[string]string{"domain": domain, "name": "alice@example.test", "message_id": "<00112233445566778899aabb@example.test>"}}
	}
	retries := func(name, file, errName, note string) vectors.Vector {
		return vectors.Vector{Name: name, Function: "DecodeRetryFile", Input: file, Error: errName, Note: note}
	}
	return vectors.File{
		Description: "The SMTP gateway's header transforms (docs/PROTOCOL.md 20.4, 20.5): an inbound message as the gateway rewrites it for the network (the gateway's address is vectors.Pattern(32, 7), no certificate carried; Date added at 1796188000 when missing), and an outbound mail's header as relayed. Line ends are CRLF. DecodeRetryFile reads the outbound retry queue's file (20.5; LF line ends).",
		Vectors: []vectors.Vector{
			wrap("inbound", "From: Bob <bob@legacy.test>\nTo: alice@example.test\nSubject: hi\nDate: Wed, 02 Dec 2026 04:59:00 +0000\nAuthentication-Results: gw.example.test; dkim=pass\nFlowmail-Name: alice@example.test (certified by example.test)\nDKIM-Signature: v=1; d=legacy.test\n\nbody\n", "", "20.4: the outside's Authentication-Results and Flowmail-* fields go; From moves to Flowmail-Gateway-From and Reply-To"),
			wrap("inbound_reply_to_no_date", "From: bob@legacy.test\nReply-To: list@legacy.test\nSubject: hi\n\nbody\n", "", "20.4: a Reply-To is kept; a Date is added"),
			wrap("forged_flowmail_sender", "From: Alice <alice@EXAMPLE.test>\nSubject: hi\n\nbody\n", "mail from a flowmail sender does not come in through SMTP", "20.3 step 1"),
			wrap("flowmail_invalid_sender", "From: <fm1abc@flowmail.invalid>\n\nbody\n", "mail from a flowmail sender does not come in through SMTP", "20.3 step 1"),
			wrap("two_from", "From: a@legacy.test\nFrom: b@legacy.test\n\nbody\n", "the From field must name exactly one mailbox", "20.3 step 1"),
			wrap("two_mailboxes", "From: a@legacy.test, b@legacy.test\n\nbody\n", "the From field must name exactly one mailbox", "20.3 step 1"),
			relay("outbound", "Flowmail-Name-Certificate: AAAA\nFrom: \"Alice\" <fm1abc@flowmail.invalid>\nTo: Bob <bob@legacy.test>\nFlowmail-Relay-To: bob@legacy.test, carol@other.test\nFlowmail-Relay-To: Bob <BOB@legacy.test>\nSubject: to bob\nReceived: from x\nDKIM-Signature: v=1\n\n", "", "20.5: From is the certified name; flowmail fields, Received and DKIM-Signature go; recipients once each"),
			relay("outbound_keeps_message_id", "From: <fm1abc@flowmail.invalid>\nMessage-ID: <m@x>\nFlowmail-Relay-To: bob@legacy.test\n\n", "", "20.5 step 6"),
			relay("relay_to_flowmail", "From: <fm1abc@flowmail.invalid>\nFlowmail-Relay-To: carol@example.test\n\n", "not a legacy address", "20.5 step 1"),
			relay("no_relay", "From: <fm1abc@flowmail.invalid>\nTo: bob@legacy.test\n\n", "no relay recipients", "20.5 step 1"),
			relay("no_header_end", "From: <fm1abc@flowmail.invalid>\nFlowmail-Relay-To: bob@legacy.test\n", "", "20.5: a header with no body ends at the end of the mail"),
			retries("retry_file", retryMagic+"\n1796188000.M1P2.host 3 1796191600 0000000000000005\n1796188001.M2P2.host 1 0 0000000000000000\n", "", "20.5 retry queue: done bit i is the i-th relay recipient"),
			retries("retry_file_empty", retryMagic+"\n", "", "20.5 retry queue: nothing waits"),
			retries("retry_file_order", retryMagic+"\nb 1 0 0000000000000000\na 1 0 0000000000000000\n", "damaged retry state", "20.5 retry queue: names ascending, each once"),
			retries("retry_file_attempts", retryMagic+"\na 8 0 0000000000000000\n", "damaged retry state", "20.5 retry queue: attempts below MaxRelayAttempts"),
			retries("retry_file_hex", retryMagic+"\na 1 0 00000000000000AB\n", "damaged retry state", "20.5 retry queue: lower-case hex"),
			retries("retry_file_no_end", retryMagic+"\na 1 0 0000000000000000", "damaged retry state", "20.5 retry queue: every line ends in LF"),
		},
	}
}
