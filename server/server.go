package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/record"

	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

// Config configures a domain server.
type Config struct {
	// Node is the full node's config; its DataDir holds the account
	// files too (AccountKeyFile, AccountsDir).
	Node node.Config
	// AccountListen is the UDP address of the account service, which
	// also answers the held-mail messages (section 21).
	AccountListen string
	// HeldQuota is the bytes of mail held per delegating owner; 0 means
	// DefaultHeldQuota.
	HeldQuota int64
	// CollectInterval is how often held mail is collected; 0 means
	// DefaultCollectInterval, below 0 never (tests call Holder.Collect).
	CollectInterval time.Duration
}

// Server is a running domain server.
type Server struct {
	node     *node.Node
	quic     *transport.QUIC
	accounts *Accounts
	holder   *Holder
	held     *heldService
	dataDir  string

	stop context.CancelFunc
	done sync.WaitGroup
}

// nodeNet is the DHT as the holder sees it: the node's blocks and
// lookups, and its DHT's records.
type nodeNet struct{ *node.Node }

func (n nodeNet) KeyState(ctx context.Context, a block.ID) (record.KeyState, error) {
	return n.DHT().KeyState(ctx, a)
}

func (n nodeNet) GetRecord(ctx context.Context, slot block.ID) (*record.Record, time.Duration, error) {
	return n.DHT().GetRecord(ctx, slot)
}

// handle sends held-mail messages to the holder, the rest to accounts.
func (s *Server) handle(ctx context.Context, from transport.Peer, req []byte) []byte {
	if len(req) > 0 && isHeld(MsgType(req[0])) {
		return s.held.Handle(ctx, from, req)
	}
	return s.accounts.Handle(ctx, from, req)
}

// Start starts the node, then the account service beside it.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Node.DataDir == "" || cfg.Node.Client {
		return nil, errors.New("server: a server is a full node with a data directory")
	}
	keys, err := LoadOrCreateKeys(cfg.Node.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{dataDir: cfg.Node.DataDir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.node, err = node.Start(ctx, cfg.Node); err != nil {
		return nil, err
	}
	logger := cfg.Node.Logger
	if s.accounts, err = NewAccounts(AccountsConfig{
		Dir:    filepath.Join(cfg.Node.DataDir, AccountsDir),
		Keys:   keys,
		Clock:  cfg.Node.Clock,
		Logger: logger,
	}); err != nil {
		return nil, err
	}
	if s.quic, err = transport.ListenQUIC(ctx, transport.QUICConfig{
		Identity:   s.node.Identity(),
		Network:    cfg.Node.Network,
		ListenAddr: cfg.AccountListen,
		Logger:     logger,
	}); err != nil {
		return nil, fmt.Errorf("server: account service on %s: %w", cfg.AccountListen, err)
	}
	if s.holder, err = NewHolder(HolderConfig{
		Dir: filepath.Join(cfg.Node.DataDir, HeldDir), Self: s.node.ID(), Net: nodeNet{s.node},
		Clock: cfg.Node.Clock, Quota: cfg.HeldQuota, Logger: logger,
	}); err != nil {
		return nil, err
	}
	s.held = newHeldService(s.holder, nil)
	s.quic.SetHandler(s.handle)
	if cfg.CollectInterval >= 0 {
		runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stop = stop
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			s.holder.Run(runCtx, cfg.CollectInterval)
		}()
	}
	return s, nil
}

// Node is the server's node.
func (s *Server) Node() *node.Node { return s.node }

// AccountAddr is where the account service listens.
func (s *Server) AccountAddr() netip.AddrPort { return s.quic.LocalAddr() }

// AccountContact is the account service's contact: the node's ID at
// AccountAddr.
func (s *Server) AccountContact() transport.Contact {
	return transport.Contact{ID: s.node.ID(), Addr: s.AccountAddr()}
}

// Holder is the server's held-mail collector.
func (s *Server) Holder() *Holder { return s.holder }

// DataDir is the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// Close stops collecting and the account service, then the node, and
// waits for all of them.
func (s *Server) Close() error {
	if s.stop != nil {
		s.stop()
		s.done.Wait()
	}
	var errs []error
	if s.quic != nil {
		errs = append(errs, s.quic.Close())
	}
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	return errors.Join(errs...)
}
