// Package gateway turns SMTP mail for a domain into network mail and
// back (docs/PROTOCOL.md section 20).
//
// Inbound: an SMTP server (go-smtp) takes RCPT only for names of the
// domain that resolve (package naming: DNS, the name certificate, the key
// log), checks SPF (blitiri.com.ar/go/spf), DKIM and DMARC
// (go-msgauth), refuses a From that claims a flowmail sender, rewrites
// the header (Wrap) and sends the mail sealed to the user at once
// (package delivery), signed by the gateway's own identity, which pays the
// proof of work and carries its name certificate (gateway@DOMAIN, signed
// by the domain key). The plaintext is held in memory only, until the
// mail is stored in the network or refused.
//
// Outbound: users send network mail to gateway@DOMAIN with the legacy
// recipients in Flowmail-Relay-To fields and their own name certificate
// for DOMAIN carried (19.8); the gateway fetches it (package delivery),
// rewrites From to the certified name (ParseOutbound, RelayHeaderBytes),
// signs it with DKIM under its selector, and relays it by SMTP to the
// recipients' MX or a smarthost. Failures come back to the sender as a
// bounce, over the network. The spool holds outbound mail until it is
// relayed or bounced; the retry queue of mail the remote side deferred
// (4xx) is kept beside it in one file (retrystate.go), so it survives a
// restart.
//
//	g, _ := gateway.Start(ctx, gateway.Config{...})
//	defer g.Close()
//
// Time comes from Config.Clock and every DNS answer from Config.DNS, so
// tests run against a real DNS server (nsd) and a real MTA on loopback.
//
// It may import block, identity, record, mail, mailbox, delivery, naming
// and internal/clock; it must not import transport, kademlia, blockstore,
// node, server, bridge, testnet or cmd (it reaches the network through
// delivery.Network).
package gateway
