package gateway

import (
	"time"

	"github.com/flowmail/flowmail/block"
)

// Limits of docs/PROTOCOL.md 20.7 (and section 11's table).
const (
	// LocalPart is the name of the gateway's identity in its domain:
	// gateway@DOMAIN, certified by the domain key.
	LocalPart = "gateway"
	// MaxInboundSize bounds an inbound SMTP message (the DATA bytes).
	MaxInboundSize = 25 << 20
	// MaxInboundHeader bounds an inbound message's header section, so
	// the fields the gateway adds keep it within mail.MaxHeaderSize.
	MaxInboundHeader = 64 << 10
	// MaxOutboundSize bounds a relayed message, as it is sent.
	MaxOutboundSize = 25 << 20
	// MaxRelayRecipients bounds the legacy recipients of one mail.
	MaxRelayRecipients = 64
	// MaxInboundSessions bounds the SMTP connections served at once
	// (each may hold one message of MaxInboundSize in memory).
	MaxInboundSessions = 16
	// InboundPerSender bounds the mails accepted per RateWindow for one
	// envelope sender (MAIL FROM; the client's IP group for the null
	// sender).
	InboundPerSender = 100
	// InboundPerSource bounds the mails accepted per RateWindow from
	// one client IP group (/24 or /48).
	InboundPerSource = 300
	// OutboundPerSender bounds the legacy recipients one flowmail
	// sender may reach per RateWindow.
	OutboundPerSender = 200
	// RateWindow is the window of every gateway rate limit.
	RateWindow = time.Hour
	// MaxRelayAttempts bounds the delivery attempts of one outbound mail
	// before it bounces.
	MaxRelayAttempts = 8
	// MaxDeferred bounds the spooled mails waiting for a retry (the
	// retry file, 20.5). A mail that fails for now while the queue is
	// full bounces at once, with the reason: the sender may send it
	// again.
	MaxDeferred = 1024
	// MaxSMTPReply bounds the remote reply text a bounce quotes.
	MaxSMTPReply = 512
	// MaxBounceDifficulty bounds the proof of work the gateway pays for
	// a bounce: a sender whose key demands more gets none, so junk from
	// an identity of high difficulty cannot make the gateway grind.
	MaxBounceDifficulty = block.DefaultDifficulty
)
