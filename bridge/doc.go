// Package bridge lets any mail client use flowmail: one long-running
// process per identity that serves IMAP (go-imap v2's imapserver) and
// SMTP submission (go-smtp) on loopback, keeps fetching the identity's
// mail from the network into its Maildir, and sends what clients submit.
//
//	b, _ := bridge.Start(ctx, bridge.Config{Identity, Network, Maildir, StateDir, Dir})
//	defer b.Close()
//
// The mail store is package mailbox's Maildir++ tree, the same one
// `flowmail fetch` delivers into and mutt reads: UIDs, flags and folders
// live there (docs/PROTOCOL.md 16). Submitted mail goes through the
// outbox (mailbox.Queue), synced to disk before the client hears "250",
// sent in the background, retried, and bounced into INBOX when it cannot
// go. Mail to legacy (SMTP) addresses goes to the gateway of the user's
// domain as an outbox entry of its own with the relay field (legacy.go;
// the command says which addresses are legacy and where the gateway is,
// through Config.Resolve and Config.Gateway). Logins check a password
// whose Argon2id hash is in Dir; wrong ones are rate-limited per source
// and per account on the injected clock.
//
// The two young libraries are reached through thin adapters (imap.go,
// imapmessage.go, smtp.go) over the bridge's own pieces (view, checker,
// limiter, the mailbox package), so either can be replaced.
//
// It may import block, identity, mail, mailbox, delivery, node (for
// node.ErrNotFound only) and internal packages, and must not import
// testnet or cmd.
package bridge
