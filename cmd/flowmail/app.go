package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// streams carries the process's standard streams to every command, so
// the CLI runs in tests with buffers.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	s := &streams{in: stdin, out: stdout, err: stderr}
	return &cli.App{
		Name:  "flowmail",
		Usage: "end-to-end encrypted mail over a peer-to-peer network",
		Description: "flowmail stores encrypted mail in a distributed hash table that its users run together.\n" +
			"There is no server: mail waits in the network, sealed to its recipient, until they fetch it.\n\n" +
			"Start with `flowmail init`, then `flowmail whoami` to see your address.\n" +
			"Try the whole thing on one machine with `flowmail testnet --demo`.",
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "home",
				Usage:   "data directory: identity, contacts, mail, node state",
				EnvVars: []string{"FLOWMAIL_HOME"},
				Value:   defaultHome(),
			},
			altsrc.NewStringFlag(&cli.StringFlag{
				Name:    "log-level",
				Usage:   "debug, info, warn or error",
				EnvVars: []string{"FLOWMAIL_LOG_LEVEL"},
				Value:   "warn",
			}),
			altsrc.NewStringFlag(&cli.StringFlag{
				Name:    "log-format",
				Usage:   "text or json",
				EnvVars: []string{"FLOWMAIL_LOG_FORMAT"},
				Value:   "text",
			}),
		},
		Commands: []*cli.Command{
			initCommand(s),
			whoamiCommand(s),
			contactsCommand(s),
			sendCommand(s),
			fetchCommand(s),
			publishCommand(s),
			domainCommand(s),
			nodeCommand(s),
			testnetCommand(s),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints the error once
	}
}

// defaultHome is $XDG_DATA_HOME/flowmail, or ~/.local/share/flowmail.
func defaultHome() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "flowmail")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "flowmail")
	}
	return "flowmail"
}

// newLogger builds the process logger from the global flags.
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String("log-format")) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
}
