package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/transport"
)

// Config configures a domain server.
type Config struct {
	// Node is the full node's config; its DataDir holds the account
	// files too (AccountKeyFile, AccountsDir).
	Node node.Config
	// AccountListen is the UDP address of the account service.
	AccountListen string
}

// Server is a running domain server.
type Server struct {
	node     *node.Node
	quic     *transport.QUIC
	accounts *Accounts
	dataDir  string
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
	s.quic.SetHandler(s.accounts.Handle)
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

// Close stops the account service, then the node, and waits for both.
func (s *Server) Close() error {
	var errs []error
	if s.quic != nil {
		errs = append(errs, s.quic.Close())
	}
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	return errors.Join(errs...)
}
