package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
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
		Version:   version(),
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Without arguments: the help. With a word that is no command:
		// say so (urfave's default reads "No help topic").
		Action: unknownCommand,
		Before: func(c *cli.Context) error {
			_, err := loggerOptions(c)
			return err
		},
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
			allowCommand(s),
			listCommand(s),
			sendCommand(s),
			fetchCommand(s),
			delegateCommand(s),
			statusCommand(s),
			bridgeCommand(s),
			publishCommand(s),
			domainCommand(s),
			namesCommand(s),
			keyCommand(s),
			nodeCommand(s),
			serverCommand(s),
			accountCommand(s),
			loginCommand(s),
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

// unknownCommand is the Action of the app and of commands that only
// group subcommands: help without arguments, an error naming the word
// otherwise.
func unknownCommand(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowSubcommandHelp(c)
	}
	where := c.App.Name
	if c.Command != nil && c.Command.HelpName != "" {
		where = c.Command.HelpName
	}
	return fmt.Errorf("%s has no command %q: `%s --help` lists them", where, c.Args().First(), where)
}

// version is the module version and VCS revision the binary was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if len(s.Value) > 12 {
				s.Value = s.Value[:12]
			}
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v + " (" + bi.GoVersion + ")"
}

// loggerOptions reads --log-level and --log-format. The app checks them
// before any command runs, so a misspelt level is refused even by a
// command that logs nothing.
func loggerOptions(c *cli.Context) (*slog.HandlerOptions, error) {
	var level slog.Level
	switch l := strings.ToLower(c.String("log-level")); l {
	case "debug", "info", "warn", "error":
		if err := level.UnmarshalText([]byte(l)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	switch strings.ToLower(c.String("log-format")) {
	case "text", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
	}
	return &slog.HandlerOptions{Level: level}, nil
}

// newLogger builds the process logger from the global flags.
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	opts, err := loggerOptions(c)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(c.String("log-format"), "json") {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
